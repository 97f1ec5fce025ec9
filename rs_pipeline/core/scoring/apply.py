"""The `pair_scores` stage: one scorer version over one batch's candidates, streaming."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.layout import (
    CAPTIONS_FILE,
    SCORES_ASSET,
    SCORES_FILE,
    captions_dir,
    images_dir,
    model_dir,
    scores_dir,
)
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.progress import Progress
from rs_pipeline.core.records import SCORE_SCHEMA
from rs_pipeline.core.rewards.client import RemoteScorer
from rs_pipeline.core.scoring.backends import CONFIG_FILE, load_scorer
from rs_pipeline.core.scoring.infer import PairStream, PairText, score_pairs


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


def _texts(store: ArtifactStore, batch: str) -> dict[str, list[PairText]]:
    table = store.read_table(captions_dir(batch), CAPTIONS_FILE)
    texts: dict[str, list[PairText]] = defaultdict(list)
    for r in table.to_pylist():
        if r["status"] == "ok":
            texts[r["sample_id"]].append(PairText(r["caption_id"], r["text"]))
    return texts


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
    lines through `log`)."""
    # The oracle reads this batch's recorded true quality from the store, not weights.
    scorer = stored_scorer(store, version, batches=[batch])
    stream_texts = _texts(store, batch)
    stream = PairStream(store.fs, store.path(images_dir(batch), "images.parquet"), stream_texts)
    writer = TableWriter(store, SCORE_SCHEMA, scores_dir(version, batch), SCORES_FILE)
    n, total, images = 0, 0.0, set()
    texts = sum(len(v) for v in stream_texts.values())
    progress = Progress(texts, log, what=f"{version} on {batch}: pairs")
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
    url = writer.close()
    # Lineage rows stream back from the file just written: memory stays bounded.
    with store.fs.open(store.path(scores_dir(version, batch), SCORES_FILE), "rb") as fh:
        reader = pa.RecordBatchReader.from_batches(
            SCORE_SCHEMA, pq.ParquetFile(fh).iter_batches(batch_size=8192)
        )
        key = scores_partition_key(version=version, batch=batch)
        lineage.replace_partition(
            "scores", reader, asset=SCORES_ASSET, partition_key=key, run_id=run_id
        )
    return PairScoresReport(version, batch, n, len(images), total / n if n else None, url)
