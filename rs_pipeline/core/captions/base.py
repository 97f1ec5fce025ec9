"""What captioners and judges see and produce: typed views, candidates and rankings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from rs_pipeline.core.sources.synthrs import TileAnnotation


@dataclass(frozen=True)
class SampleView:
    """One ingested image as the caption stage sees it."""

    sample_id: str
    image: Image.Image  # RGB, normalised at ingest
    label: str | None = None
    annotation: TileAnnotation | None = None  # SynthRS ground truth, when known
    gsd_m: float | None = None
    sensor: str | None = None
    lat: float | None = None
    lon: float | None = None
    captions: tuple[str, ...] = ()  # captions that came with the data (user manifests)
    source: str | None = None  # the `sources[].name` the image came from


@dataclass(frozen=True)
class Candidate:
    """One candidate caption of one image (grain of `caption_candidates`).

    `captioner_id` names model and prompt version (`vlm:qwen2vl-tiny@p1`). `degradation`
    records what a SynthRS degrader did, so the candidate's true quality is known. A failed
    request is still a row: `status="failed"`, `text=""` and the `error`.
    """

    sample_id: str
    captioner_id: str
    text: str
    degradation: str | None = None
    status: str = "ok"
    error: str | None = None


class Captioner(Protocol):
    """Writes candidates for a batch of images; several per image are allowed."""

    id: str

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]: ...


@dataclass(frozen=True)
class Ranking:
    """A judge's verdict on one image's candidates: indices best first, and why."""

    order: tuple[int, ...]
    scores: tuple[float, ...] | None = None  # per candidate, in input order, higher is better
    reason: str = ""


class Judge(Protocol):
    """Ranks the candidates of one image; None when it cannot judge this image."""

    id: str

    def rank(self, sample: SampleView, candidates: Sequence[Candidate]) -> Ranking | None: ...
