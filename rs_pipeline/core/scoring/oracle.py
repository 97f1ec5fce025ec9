"""The oracle scorer: a pair's true quality, where the data engine knows it.

Known quality comes from SynthRS ground truth or from injected errors (`captions.noise`), and
is recorded on each candidate for measurement only. The oracle reads it back, so its selection
is the ceiling every learned scorer is measured against: `(learned - all) / (oracle - all)` is
the share of the achievable gain a scorer reaches. Never a production scorer: real pools have
no known quality, and then the oracle fails saying so rather than guess.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.ingest.images import load_images
from rs_pipeline.core.layout import CAPTIONS_FILE, captions_dir
from rs_pipeline.core.scoring.base import check_pair_lengths
from rs_pipeline.core.scoring.baselines import image_digest


class OracleScorer:
    """Backend "oracle": true quality of (image, text) by image content and exact text."""

    backend = "oracle"

    def __init__(self, quality: dict[tuple[str, str], float]) -> None:
        self.quality = quality  # (image_digest, text) -> true quality in [0, 1]

    @classmethod
    def from_store(cls, store: ArtifactStore, batches: Sequence[str]) -> OracleScorer:
        """Known qualities of every ok candidate of `batches`; fails when none is known."""
        quality: dict[tuple[str, str], float] = {}
        for batch in batches:
            rows = store.read_table(captions_dir(batch), CAPTIONS_FILE).to_pylist()
            known = [r for r in rows if r["status"] == "ok" and r["quality"] is not None]
            images = load_images(store, batch, {r["sample_id"] for r in known})
            digests = {sid: image_digest(im) for sid, im in images.items()}
            for r in known:
                quality[(digests[r["sample_id"]], r["text"])] = float(r["quality"])
        if not quality:
            raise ValueError(
                f"oracle scorer: no candidate of batches {list(batches)} has a known true "
                "quality; it needs SynthRS ground truth or captions.noise.rate > 0 (the "
                "curation experiment), and has no meaning on a real pool"
            )
        return cls(quality)

    def knows(self, image: Image.Image, text: str) -> bool:
        """Whether this pair's true quality is known."""
        return (image_digest(image), text) in self.quality

    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
    ) -> list[float]:
        """True quality per pair; a pair of unknown quality fails, naming the text."""
        check_pair_lengths(images, texts, questions)
        out = []
        for image, text in zip(images, texts, strict=True):
            value = self.quality.get((image_digest(image), text))
            if value is None:
                raise ValueError(
                    f"oracle scorer: no known true quality for caption {text[:60]!r}; the "
                    "oracle only scores candidates whose quality the data engine recorded"
                )
            out.append(value)
        return out
