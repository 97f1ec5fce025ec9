"""The `rs_images` stage: ingest one batch from every configured source into the store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import chain

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.ingest.batch import IngestCounts, ingest_items
from rs_pipeline.core.layout import IMAGES_ASSET, images_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.records import IMAGE_SCHEMA, QUARANTINE_SCHEMA, SAMPLE_SCHEMA, to_table
from rs_pipeline.core.sources.registry import build_source


@dataclass(frozen=True)
class IngestReport:
    """What the stage wrote and how every input was accounted for."""

    batch: str
    counts: IngestCounts
    samples_url: str
    quarantine_url: str
    images_url: str
    data_version: str
    ids_unique: bool
    preview: list[dict]


def _manifest_hash(samples, quarantine) -> str:
    """Content hash of the outputs, independent of file encoding: the Dagster DataVersion."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.sample_id):
        h.update(f"{s.sample_id}|{s.label}|{s.source}|{','.join(s.source_uris)}\n".encode())
    for q in sorted(quarantine, key=lambda q: (q.uri, q.reason)):
        h.update(f"Q|{q.uri}|{q.reason}|{q.sample_id}\n".encode())
    return h.hexdigest()[:16]


def run_ingest(
    cfg: PipelineConfig, batch: str, store: ArtifactStore, lineage: LineageStore, run_id: str
) -> IngestReport:
    """Ingest `batch` from every source; write manifest, quarantine, images and lineage."""
    folder = images_dir(batch)
    sources = [build_source(s) for s in cfg.sources]
    items = chain.from_iterable(src.iter_items(batch) for src in sources)
    images = TableWriter(store, IMAGE_SCHEMA, folder, "images.parquet")

    def keep_image(sample_id: str, fmt: str, data: bytes) -> None:
        images.write({"sample_id": sample_id, "format": fmt, "data": data})

    try:
        result = ingest_items(items, batch, cfg.ingest, keep_image)
    except BaseException:
        images.abort()
        raise
    images_url = images.close()
    samples_t = to_table(result.samples, SAMPLE_SCHEMA)
    quarantine_t = to_table(result.quarantine, QUARANTINE_SCHEMA)
    samples_url = store.write_table(samples_t, folder, "samples.parquet")
    quarantine_url = store.write_table(quarantine_t, folder, "quarantine.parquet")
    for table, rows in (("samples", samples_t), ("quarantine", quarantine_t)):
        lineage.replace_partition(
            table, rows, asset=IMAGES_ASSET, partition_key=batch, run_id=run_id
        )
    ids = samples_t.column("sample_id").to_pylist()
    preview = [
        {"sample_id": s.sample_id[:12], "source": s.source, "label": s.label}
        for s in result.samples[:5]
    ]
    return IngestReport(
        batch=batch,
        counts=result.counts,
        samples_url=samples_url,
        quarantine_url=quarantine_url,
        images_url=images_url,
        data_version=_manifest_hash(result.samples, result.quarantine),
        ids_unique=len(ids) == len(set(ids)),
        preview=preview,
    )
