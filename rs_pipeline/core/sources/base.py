"""What every source yields: raw encoded bytes plus what the source knows about them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GeoMetadata:
    """Acquisition facts a source knows about a tile; None where unknown."""

    gsd_m: float | None = None
    sensor: str | None = None
    lat: float | None = None
    lon: float | None = None
    acquisition_date: str | None = None  # ISO 8601 date


@dataclass(frozen=True)
class RawItem:
    """One input as a source found it, before decoding.

    `data` is the encoded file exactly as read (its sha256 is the sample_id). `problem`
    is set instead, as (quarantine reason, detail), when the source already knows the input
    cannot be admitted (unreadable, outside its root, ...): it still reaches quarantine with
    its reason rather than vanishing.
    """

    uri: str
    source: str
    source_kind: str
    data: bytes | None
    label: str | None = None
    geo: GeoMetadata = field(default_factory=GeoMetadata)
    annotation_json: str | None = None  # ground truth (SynthRS), JSON
    captions: tuple[str, ...] = ()
    problem: tuple[str, str] | None = None


class Source(Protocol):
    """A source lists its inputs for one batch in a deterministic order."""

    name: str

    def iter_items(self, batch: str) -> Iterator[RawItem]: ...
