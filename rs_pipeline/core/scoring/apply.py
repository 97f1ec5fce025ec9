"""The `pair_scores` stage: one scorer version over one batch's candidates, streaming."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.layout import (
    CAPTIONS_FILE,
    IMAGES_FILE,
    SCORES_ASSET,
    SCORES_FILE,
    captions_dir,
    model_dir,
    require_ingested,
    scores_dir,
)
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.progress import Progress
from rs_pipeline.core.records import SCORE_SCHEMA
from rs_pipeline.core.rewards.client import RemoteScorer
from rs_pipeline.core.scoring.backends import CONFIG_FILE, load_scorer
from rs_pipeline.core.scoring.infer import PairStream, SpilledTexts, score_pairs, spill_texts


def scores_partition_key(*, version: str, batch: str) -> str:
    """The lineage partition key of one (scorer_version, batch) partition of pair scores.

    Dagster writes a MultiPartitionKey with its dimension names sorted (`batch|scorer_version`),
    so lineage rows carry the same string and join with Dagster's partition keys.
    """
    return f"{batch}|{version}"


@dataclass(frozen=True)
class PairScoresReport:
    """How many pairs were scored, their score range, and where they are."""

    version: str
    batch: str
    pairs: int
    images: int
    mean_score: float | None
    url: str


def images_path(store: ArtifactStore, batch: str) -> str:
    """The path of `batch`'s images.parquet: the one place pair_scores names it, once the
    ingest partition is fully published (else BatchNotIngested, naming what to materialize)."""
    return store.path(require_ingested(store, batch), IMAGES_FILE)


def text_batches(store: ArtifactStore, batch: str) -> Callable[[], Iterator[pa.RecordBatch]]:
    """A fresh stream, per call, of `batch`'s ok candidates (sample_id, caption_id, text)."""
    if not store.exists(captions_dir(batch), CAPTIONS_FILE):
        raise FileNotFoundError(
            f"{store.url(captions_dir(batch), CAPTIONS_FILE)} does not exist: materialize "
            f"caption_candidates for batch {batch!r} first"
        )
    path = store.path(captions_dir(batch), CAPTIONS_FILE)
    columns = ["sample_id", "caption_id", "text", "status"]

    def batches() -> Iterator[pa.RecordBatch]:
        with store.fs.open(path, "rb") as fh:
            for rb in pq.ParquetFile(fh).iter_batches(batch_size=8192, columns=columns):
                yield rb.filter(pc.equal(rb.column("status"), "ok"))

    return batches


def batch_texts(store: ArtifactStore, batch: str, images: str, folder: str) -> SpilledTexts:
    """`batch`'s ok candidates spilled under the local `folder`, in the order of the images
    table at `images` (its images_path)."""
    with store.fs.open(images, "rb") as fh:
        image_ids = pq.read_table(fh, columns=["sample_id"]).column("sample_id")
    return spill_texts(text_batches(store, batch), image_ids.combine_chunks(), folder)


@contextlib.contextmanager
def _scratch(cfg: PipelineConfig) -> Iterator[str]:
    """A private local folder under storage.work_dir, removed afterwards."""
    parent = Path(cfg.storage.work_dir).expanduser() / SCORES_ASSET
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        yield tmp


def stored_scorer(store: ArtifactStore, version: str, *, batches: Sequence[str] = ()):
    """The scorer `score_model` wrote for `version`, loaded from the artifact store."""
    if not store.exists(model_dir(version), CONFIG_FILE):
        raise FileNotFoundError(
            f"{store.url(model_dir(version))} has no scorer: materialize score_model for "
            f"scorer_version {version!r} first"
        )
    with tempfile.TemporaryDirectory() as tmp:
        store.fs.get(store.path(model_dir(version)) + "/", tmp + "/", recursive=True)
        return load_scorer(tmp, store=store, batches=list(batches))


def scorer_for(cfg: PipelineConfig, store: ArtifactStore, version: str, *, url: str | None = None):
    """The scorer an asset asks: a running `rs-pipeline serve` at `url` (else `serving.url`)
    when one is set, else `version` loaded in-process. A service serving another version is
    refused, so lineage never names a scorer that did not score."""
    target = url or cfg.serving.url
    if not target:
        return stored_scorer(store, version)
    remote = RemoteScorer.from_config(cfg.serving, url=target)
    served = remote.client.health().get("scorer_version")
    if served != version:
        raise ValueError(
            f"the scorer service at {target} serves {served!r}, not {version!r}: start "
            f"`rs-pipeline serve --scorer {version}` or unset serving.url to score in-process"
        )
    return remote


def _write_scores(
    cfg: PipelineConfig,
    scorer,
    version: str,
    batch: str,
    store: ArtifactStore,
    texts: SpilledTexts,
    images_at: str,
    log: Callable[[str], None] | None,
) -> tuple[int, float, int, str]:
    """Score every pair into scores.parquet; returns (pairs, score sum, images, url)."""
    stream = PairStream(store.fs, images_at, texts)
    writer = TableWriter(store, SCORE_SCHEMA, scores_dir(version, batch), SCORES_FILE, chunk=8192)
    n, total, images = 0, 0.0, set()
    progress = Progress(texts.total, log, what=f"{version} on {batch}: pairs")
    try:
        for refs, scores in score_pairs(
            scorer, stream, cfg.scoring.score_batch_size, cfg.scoring.num_workers,
            resolve_device(cfg.compute.device),
        ):  # fmt: skip
            for ref, score in zip(refs, scores, strict=True):
                row = {"scorer_version": version, "batch": batch, "sample_id": ref.sample_id,
                       "caption_id": ref.caption_id, "score": float(score)}  # fmt: skip
                writer.write(row)
                n += 1
                total += score
                images.add(ref.sample_id)
            progress.step(len(refs))
    except BaseException:
        writer.abort()
        raise
    return n, total, len(images), writer.close()


def run_pair_scores(
    cfg: PipelineConfig,
    version: str,
    batch: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> PairScoresReport:
    """Score every ok candidate of `batch` with `version`; Parquet + lineage rows (progress
    lines through `log`). Memory stays flat in the number of pairs: texts are spilled to local
    scratch in image order, and lineage rows are inserted by DuckDB from the written file."""
    # The oracle reads this batch's recorded true quality from the store, not weights.
    scorer = stored_scorer(store, version, batches=[batch])
    with _scratch(cfg) as tmp:
        images_at = images_path(store, batch)  # checks the ingest partition once
        texts = batch_texts(store, batch, images_at, tmp)
        n, total, images, url = _write_scores(
            cfg, scorer, version, batch, store, texts, images_at, log
        )
        local = store.path(scores_dir(version, batch), SCORES_FILE)
        if not store.is_local:  # DuckDB reads the rows from a local copy
            store.fs.get(local, f"{tmp}/{SCORES_FILE}")
            local = f"{tmp}/{SCORES_FILE}"
        lineage.replace_partition_from_parquet(
            "scores", local, asset=SCORES_ASSET, run_id=run_id,
            partition_key=scores_partition_key(version=version, batch=batch),
        )  # fmt: skip
    return PairScoresReport(version, batch, n, images, total / n if n else None, url)
