"""Training data for score models: preference pairs of every batch, with their images."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.ingest.images import load_images
from rs_pipeline.core.layout import (
    CAPTIONS_FILE,
    PAIRS_FILE,
    captions_dir,
    paired_batches,
    pairs_dir,
)
from rs_pipeline.core.scoring.train import PairExample


@dataclass(frozen=True)
class PairData:
    """Train and validation pairs (split by image upstream) and the pool for warm starts."""

    train: list[PairExample]
    val: list[PairExample]
    pool: list[tuple[Image.Image, str]]  # (image, candidate text) of training images
    batches: list[str]


def load_pair_data(store: ArtifactStore, batches: list[str] | None = None) -> PairData:
    """Every pair of `batches` (default: all materialized) as PairExamples with images."""
    batches = batches if batches is not None else paired_batches(store)
    if not batches:
        raise FileNotFoundError(
            f"no preference_pairs under {store.url('preference_pairs')}: materialize "
            "rs_images, caption_candidates and preference_pairs for at least one batch first"
        )
    train, val, pool = [], [], []
    for batch in batches:
        pairs = store.read_table(pairs_dir(batch), PAIRS_FILE).to_pylist()
        images = load_images(store, batch, {p["sample_id"] for p in pairs})
        for p in pairs:
            ex = PairExample(images[p["sample_id"]], p["chosen"], p["rejected"], p["question"])
            (val if p["split"] == "val" else train).append(ex)
        caps = store.read_table(captions_dir(batch), CAPTIONS_FILE)
        split = {p["sample_id"]: p["split"] for p in pairs}
        for c in caps.to_pylist():
            if c["status"] == "ok" and split.get(c["sample_id"]) == "train":
                pool.append((images[c["sample_id"]], c["text"]))
    return PairData(train, val, pool, batches)
