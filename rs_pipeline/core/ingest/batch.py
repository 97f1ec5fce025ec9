"""Ingest one batch: hash, dedup, decode and normalise every input; quarantine the rest.

Grain of the outputs: one manifest row per unique image (content hash), one quarantine row
per rejected input. Counts reconcile: inputs = unique + duplicates + quarantined.

Label policy for duplicates: when one image (one content hash) is found under several
labels, none of them can be trusted, so the image is kept unlabelled (`label` None), every
label goes to `conflicting_labels` and a `label_conflict` note names them; no row is added
or removed, so counts still reconcile. A missing label (None) is no claim: it conflicts with
nothing, and the first label seen fills it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from rs_pipeline.core.config import IngestConfig
from rs_pipeline.core.ingest.decode import Decoded, decode_image, strip_jpeg_trailer
from rs_pipeline.core.records import (
    QuarantineReason,
    QuarantineRow,
    Sample,
    SampleNote,
    sample_id_of,
)
from rs_pipeline.core.sources.base import RawItem


@dataclass
class IngestCounts:
    """How every input of a batch was accounted for."""

    inputs: int = 0
    unique: int = 0
    duplicates: int = 0
    quarantined: int = 0
    by_reason: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)

    @property
    def reconciles(self) -> bool:
        """inputs = unique + duplicates + quarantined."""
        return self.inputs == self.unique + self.duplicates + self.quarantined


@dataclass
class IngestResult:
    """Samples (in first-seen order), quarantine rows and counts of one batch."""

    samples: list[Sample]
    quarantine: list[QuarantineRow]
    counts: IngestCounts


def _stored_bytes(decoded: Decoded, original: bytes) -> tuple[str, bytes]:
    """(format, bytes) to keep: the original when it is already a plain RGB JPEG/PNG (no
    re-encoding loss, and the costliest step skipped), else a PNG of the normalised pixels."""
    if not decoded.normalisation and decoded.orig_format in ("JPEG", "PNG"):
        return decoded.orig_format, original
    buf = io.BytesIO()
    decoded.image.save(buf, format="PNG", compress_level=6)
    return "PNG", buf.getvalue()


def _sample(item: RawItem, sid: str, batch: str, dec: Decoded, notes: list[str]) -> Sample:
    g = item.geo
    return Sample(
        sample_id=sid,
        batch=batch,
        source=item.source,
        source_kind=item.source_kind,
        source_uris=[item.uri],
        label=item.label,
        width=dec.image.size[0],
        height=dec.image.size[1],
        orig_width=dec.orig_size[0],
        orig_height=dec.orig_size[1],
        orig_format=dec.orig_format,
        orig_mode=dec.orig_mode,
        normalisation=dec.normalisation,
        gsd_m=g.gsd_m,
        sensor=g.sensor,
        lat=g.lat,
        lon=g.lon,
        acquisition_date=g.acquisition_date,
        annotation_json=item.annotation_json,
        captions=list(item.captions),
        notes=[*dec.notes, *notes],
    )


def _trailer_notes(uri: str, cut: int) -> list[str]:
    """The note for bytes cut after a JPEG's EOI, naming the input they came from."""
    if not cut:
        return []
    return [f"{SampleNote.TRAILING_BYTES_STRIPPED}: {cut} bytes after the JPEG end in {uri}"]


def _reconcile_label(kept: Sample, label: str | None) -> Sample:
    """Apply the module's label policy to one more label found for `kept`'s image."""
    seen = kept.conflicting_labels or ([] if kept.label is None else [kept.label])
    if label is None or label in seen:
        return kept
    if not seen:
        return replace(kept, label=label)
    labels = sorted([*seen, label])
    # One note per image, rewritten as labels accrue, so it always names all of them.
    others = [n for n in kept.notes if not n.startswith(f"{SampleNote.LABEL_CONFLICT}:")]
    note = f"{SampleNote.LABEL_CONFLICT}: one image under labels {labels}; kept unlabelled"
    return replace(kept, label=None, conflicting_labels=labels, notes=[*others, note])


def _merge_duplicate(kept: Sample, item: RawItem, notes: list[str]) -> Sample:
    """Exact duplicate: one row per image, every source URI and caption kept (input order,
    exact repeats removed), as a CLIP-style manifest lists one image on several rows."""
    captions = list(dict.fromkeys([*kept.captions, *item.captions]))
    merged = replace(
        kept,
        source_uris=[*kept.source_uris, item.uri],
        captions=captions,
        notes=[*kept.notes, *notes],
    )
    return _reconcile_label(merged, item.label)


def _reject(item: RawItem, batch: str, reason: str, detail: str, sid: str | None):
    return QuarantineRow(batch, item.uri, item.source, item.source_kind, str(reason), detail, sid)


def ingest_items(
    items: Iterable[RawItem], batch: str, cfg: IngestConfig, image_sink
) -> IngestResult:
    """Account for every item; `image_sink(sample_id, format, data)` receives each image."""
    counts = IngestCounts()
    samples: dict[str, Sample] = {}
    quarantine: list[QuarantineRow] = []
    for item in items:
        counts.inputs += 1
        counts.by_source[item.source] += 1
        if item.problem is not None:
            quarantine.append(_reject(item, batch, *item.problem, None))
            continue
        assert item.data is not None, f"{item.uri}: a source must give data or a problem"
        # Hashed without trailing junk: files differing only in it are one image.
        data, cut = strip_jpeg_trailer(item.data)
        sid = sample_id_of(data)
        if len(item.data) > cfg.max_bytes:
            detail = f"{len(item.data)} bytes > ingest.max_bytes={cfg.max_bytes}"
            quarantine.append(_reject(item, batch, QuarantineReason.TOO_LARGE_FILE, detail, sid))
            continue
        if sid in samples:
            samples[sid] = _merge_duplicate(samples[sid], item, _trailer_notes(item.uri, cut))
            counts.duplicates += 1
            continue
        decoded = decode_image(data, cfg)
        if not isinstance(decoded, Decoded):
            detail = "; ".join([decoded.detail, *_trailer_notes(item.uri, cut)])
            quarantine.append(_reject(item, batch, decoded.reason, detail, sid))
            continue
        samples[sid] = _sample(item, sid, batch, decoded, _trailer_notes(item.uri, cut))
        image_sink(sid, *_stored_bytes(decoded, data))
    counts.unique = len(samples)
    counts.quarantined = len(quarantine)
    counts.by_reason = Counter(q.reason for q in quarantine)
    return IngestResult(list(samples.values()), quarantine, counts)
