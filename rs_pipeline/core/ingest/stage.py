"""The `rs_images` stage: ingest one batch from every configured source into the store.

A partition is published whole or not at all: every table is first written under a private
staging folder (`rs_images/_staging/batch=<b>/<uuid>/`), lineage is recorded, and only then are
the files moved into `rs_images/batch=<b>/`, `samples.parquet` last. `samples.parquet` is the
marker readers require (`layout.batches_under`, `captions.views`), and it is removed before the
moves begin, so even a crash mid-move (an S3 move is copy + delete, not atomic) leaves a folder
no reader treats as a batch. A crash before the moves leaves the previous partition untouched.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.ingest.batch import IngestCounts, IngestResult, ingest_items
from rs_pipeline.core.layout import IMAGES_ASSET, IMAGES_FILE, SAMPLES_FILE, images_dir
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


MARKER = SAMPLES_FILE  # published last; its presence means the partition is complete
_BESIDE_MARKER = (IMAGES_FILE, "quarantine.parquet")


class _Staging:
    """A private folder for one run's tables, moved into the partition only when complete."""

    def __init__(self, store: ArtifactStore, folder: str) -> None:
        asset, partition = folder.split("/", 1)
        self.store, self.folder = store, folder
        # Runs killed outright (kill -9, OOM) leave their staging behind. A partition has one
        # run at a time (Dagster runs its step once at a time), so any staging of this
        # partition that exists now is such a leftover, and safe to delete.
        partition_staging = f"{asset}/_staging/{partition}"
        if store.exists(partition_staging):
            store.fs.rm(store.path(partition_staging), recursive=True)
        self.dir = self._run_dir = f"{partition_staging}/{uuid.uuid4().hex}"

    def publish(self) -> None:
        """Unpublish the old partition (drop its marker), move the tables in, marker last."""
        fs, store = self.store.fs, self.store
        fs.makedirs(store.path(self.folder), exist_ok=True)
        if store.exists(self.folder, MARKER):
            fs.rm(store.path(self.folder, MARKER))
        for name in (*_BESIDE_MARKER, MARKER):
            fs.mv(store.path(self.dir, name), store.path(self.folder, name))
        self.discard()

    def discard(self) -> None:
        """Remove this run's staging folder, whatever it holds."""
        if self.store.exists(self._run_dir):
            self.store.fs.rm(self.store.path(self._run_dir), recursive=True)


def _ingest_to(cfg: PipelineConfig, batch: str, store: ArtifactStore, folder: str):
    """Ingest into `folder` (the staging folder); returns the result and its two tables."""
    sources = [build_source(s) for s in cfg.sources]
    items = chain.from_iterable(src.iter_items(batch) for src in sources)
    images = TableWriter(store, IMAGE_SCHEMA, folder, IMAGES_FILE)

    def keep_image(sample_id: str, fmt: str, data: bytes) -> None:
        images.write({"sample_id": sample_id, "format": fmt, "data": data})

    try:
        result = ingest_items(items, batch, cfg.ingest, keep_image)
    except BaseException:
        images.abort()
        raise
    images.close()
    samples_t = to_table(result.samples, SAMPLE_SCHEMA)
    quarantine_t = to_table(result.quarantine, QUARANTINE_SCHEMA)
    store.write_table(quarantine_t, folder, "quarantine.parquet")
    store.write_table(samples_t, folder, MARKER)
    return result, samples_t, quarantine_t


def _staged(store: ArtifactStore, folder: str, work: Callable[[str], tuple]) -> tuple:
    """`work(staging_folder)`, then publish into `folder`; on any failure publish nothing."""
    staging = _Staging(store, folder)
    try:
        out = work(staging.dir)
        staging.publish()
    except BaseException:
        staging.discard()
        raise
    return out


def run_ingest(
    cfg: PipelineConfig, batch: str, store: ArtifactStore, lineage: LineageStore, run_id: str
) -> IngestReport:
    """Ingest `batch` from every source; write manifest, quarantine, images and lineage."""
    folder = images_dir(batch)

    def work(staging_dir: str) -> tuple[IngestResult, object]:
        result, samples_t, quarantine_t = _ingest_to(cfg, batch, store, staging_dir)
        # Lineage before the files move: a failure here leaves the old partition as it was.
        # Both tables in one transaction (and one open of the database): all or nothing.
        lineage.replace_partitions(
            {"samples": samples_t, "quarantine": quarantine_t},
            asset=IMAGES_ASSET, partition_key=batch, run_id=run_id,
        )  # fmt: skip
        return result, samples_t

    result, samples_t = _staged(store, folder, work)
    ids = samples_t.column("sample_id").to_pylist()
    preview = [
        {"sample_id": s.sample_id[:12], "source": s.source, "label": s.label}
        for s in result.samples[:5]
    ]
    return IngestReport(
        batch=batch,
        counts=result.counts,
        samples_url=store.url(folder, MARKER),
        quarantine_url=store.url(folder, "quarantine.parquet"),
        images_url=store.url(folder, IMAGES_FILE),
        data_version=_manifest_hash(result.samples, result.quarantine),
        ids_unique=len(ids) == len(set(ids)),
        preview=preview,
    )
