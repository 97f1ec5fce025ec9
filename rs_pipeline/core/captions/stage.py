"""The `caption_candidates` stage: every enabled captioner over one ingested batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.base import Candidate
from rs_pipeline.core.captions.noise import NoiseInjector, NoiseReport, Noisy, Subject
from rs_pipeline.core.captions.oracle import caption_quality
from rs_pipeline.core.captions.registry import build_captioners
from rs_pipeline.core.captions.views import iter_views, load_manifest
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.layout import CAPTIONS_ASSET, CAPTIONS_FILE, captions_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.progress import Progress
from rs_pipeline.core.records import CAPTION_SCHEMA, CaptionRow, caption_id_of, to_table


@dataclass(frozen=True)
class CaptionReport:
    """What the stage wrote, per captioner and per degradation."""

    batch: str
    images: int
    candidates: int
    failed: int
    duplicates_dropped: int
    by_captioner: dict[str, int]
    by_degradation: dict[str, int]
    mean_quality_by_captioner: dict[str, float]
    url: str
    noise: dict = field(default_factory=dict)  # injected errors, when captions.noise is on


def run_captions(
    cfg: PipelineConfig,
    batch: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> CaptionReport:
    """Caption every image of `batch`; one row per (image, captioner, text). Progress lines
    (image x captioner passes done of the batch's, rate, ETA) go through `log`."""
    captioners = build_captioners(cfg.captions, resolve_device(cfg.compute.device))
    candidates: list[Candidate] = []
    subjects: dict[str, Subject] = {}
    # Counted per captioner pass over a chunk: a slow VLM captioner still reports within a chunk.
    images = load_manifest(store, batch).num_rows
    progress = Progress(images * len(captioners), log, what=f"{batch}: image x captioner")
    for chunk in iter_views(store, batch, cfg.captions.chunk_size):
        subjects |= {v.sample_id: Subject(v.label, v.annotation) for v in chunk}
        for captioner in captioners:
            candidates += captioner.caption(chunk)
            progress.step(len(chunk))
    noise = NoiseReport()
    noisy = [Noisy(c, None) for c in candidates]
    if cfg.captions.noise.rate > 0:  # off in production; the curation experiment turns it on
        noisy, noise = NoiseInjector(cfg.captions.noise).apply(subjects, candidates)
    rows: dict[str, CaptionRow] = {}
    duplicates = 0
    for item in noisy:
        cand = item.candidate
        cid = caption_id_of(cand.sample_id, cand.captioner_id, cand.text)
        if cid in rows:  # the same captioner wrote the same text twice for an image
            duplicates += 1
            continue
        ann, ok = subjects[cand.sample_id].annotation, cand.status == "ok"
        quality = caption_quality(cand.text, ann) if ann is not None and ok else item.quality
        rows[cid] = CaptionRow(
            caption_id=cid,
            batch=batch,
            sample_id=cand.sample_id,
            captioner_id=cand.captioner_id,
            text=cand.text,
            degradation=cand.degradation,
            status=cand.status,
            error=cand.error,
            quality=quality,
        )
    table = to_table(list(rows.values()), CAPTION_SCHEMA)
    url = store.write_table(table, captions_dir(batch), CAPTIONS_FILE)
    lineage.replace_partition(
        "captions", table, asset=CAPTIONS_ASSET, partition_key=batch, run_id=run_id
    )
    return _report(batch, len(subjects), duplicates, list(rows.values()), url, noise)


def _report(batch, images: int, duplicates: int, rows: list[CaptionRow], url: str, noise):
    by_captioner = Counter(r.captioner_id for r in rows)
    by_degradation = Counter((r.degradation or "").split(":", 1)[0] for r in rows if r.degradation)
    qualities: dict[str, list[float]] = {}
    for r in rows:
        if r.quality is not None:
            qualities.setdefault(r.captioner_id, []).append(r.quality)
    return CaptionReport(
        batch=batch,
        images=images,
        candidates=len(rows),
        failed=sum(r.status == "failed" for r in rows),
        duplicates_dropped=duplicates,
        by_captioner=dict(sorted(by_captioner.items())),
        by_degradation=dict(sorted(by_degradation.items())),
        mean_quality_by_captioner={k: round(sum(v) / len(v), 4) for k, v in qualities.items()},
        url=url,
        noise=noise.as_dict(),
    )
