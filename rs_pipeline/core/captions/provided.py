"""Provided captioner: the captions that came with the data become candidates.

A manifest's `captions` column (a team's own captions, or a dataset's titles) is ingested into
`samples.parquet`; this captioner turns each into a candidate, so they are judged, scored and
selected like any other. The captioner id names the source (`provided:field_survey/v1`), so a
selection can say whose captions it kept. Images without captions get none.
"""

from __future__ import annotations

from collections.abc import Sequence

from rs_pipeline.core.captions.base import Candidate, SampleView

VERSION = "v1"
UNKNOWN_SOURCE = "unknown"


def provided_id(source: str | None) -> str:
    """`provided:<source>/v1`; `provided:unknown/v1` for a sample with no source name."""
    return f"provided:{source or UNKNOWN_SOURCE}/{VERSION}"


def provided_texts(captions: Sequence[str], max_per_image: int | None = None) -> list[str]:
    """Captions stripped, empty ones skipped, exact repeats dropped, in order; at most `max`."""
    out: list[str] = []
    for caption in captions:
        text = caption.strip()
        if text and text not in out:
            out.append(text)
    return out if max_per_image is None else out[:max_per_image]


class ProvidedCaptioner:
    """One candidate per caption that came with an image, named by the image's source."""

    id = f"provided/{VERSION}"  # the family; candidates carry `provided:<source>/v1`

    def __init__(self, max_per_image: int | None = None) -> None:
        if max_per_image is not None and (not isinstance(max_per_image, int) or max_per_image < 1):
            raise ValueError(f"max_per_image must be None or an int >= 1, got {max_per_image!r}")
        self.max_per_image = max_per_image

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """Candidates for samples with captions; none for the others."""
        return [
            Candidate(s.sample_id, provided_id(s.source), text)
            for s in samples
            for text in provided_texts(s.captions, self.max_per_image)
        ]
