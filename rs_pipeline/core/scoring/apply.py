"""The `pair_scores` stage: one scorer version over one batch's candidates, streaming."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline.core.captions.stage import captions_dir
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.ingest.stage import batch_dir
from rs_pipeline.core.layout import SCORES_ASSET, scores_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.records import SCORE_SCHEMA
from rs_pipeline.core.scoring.infer import PairStream, PairText, score_pairs
from rs_pipeline.core.scoring.stage import model_dir

ASSET = SCORES_ASSET


def load_scorer(folder: str | Path):
    """Any saved scorer folder, by the backend its config.json names."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    backend = config.get("backend")
    if backend == "clip_head":
        from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

        return ClipHeadScorer.load(folder)
    if backend == "qwen2vl_reward":
        from rs_pipeline.core.scoring.qwen2vl_reward import Qwen2VLRewardScorer

        return Qwen2VLRewardScorer.load(folder)
    if backend == "clipscore":
        from rs_pipeline.core.scoring.baselines import ClipScoreScorer

        spec = config["spec"]
        return ClipScoreScorer.from_name(
            spec["clip_model"], spec["seed"], folder / "clip.safetensors"
        )
    if backend == "random":
        from rs_pipeline.core.scoring.baselines import RandomScorer

        return RandomScorer(config["spec"]["seed"])
    raise ValueError(f"{folder}/config.json: unknown backend {backend!r}")


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
    table = store.read_table(captions_dir(batch), "captions.parquet")
    texts: dict[str, list[PairText]] = defaultdict(list)
    for r in table.to_pylist():
        if r["status"] == "ok":
            texts[r["sample_id"]].append(PairText(r["caption_id"], r["text"]))
    return texts


def run_pair_scores(
    cfg: PipelineConfig,
    version: str,
    batch: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
) -> PairScoresReport:
    """Score every ok candidate of `batch` with `version`; Parquet + lineage rows."""
    if not store.exists(model_dir(version), "config.json"):
        raise FileNotFoundError(
            f"{store.url(model_dir(version))} has no scorer: materialize score_model for "
            f"scorer_version {version!r} first"
        )
    with tempfile.TemporaryDirectory() as tmp:
        store.fs.get(store.path(model_dir(version)) + "/", tmp + "/", recursive=True)
        backend = json.loads((Path(tmp) / "config.json").read_text()).get("backend")
        if backend == "oracle":  # reads the batch's recorded true quality, not weights
            from rs_pipeline.core.scoring.oracle import OracleScorer

            scorer = OracleScorer.from_store(store, [batch])
        else:
            scorer = load_scorer(tmp)
    stream = PairStream(
        store.fs, store.path(batch_dir(batch), "images.parquet"), _texts(store, batch)
    )
    writer = TableWriter(store, SCORE_SCHEMA, scores_dir(version, batch), "scores.parquet")
    n, total, images = 0, 0.0, set()
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
    except BaseException:
        writer.abort()
        raise
    url = writer.close()
    # Lineage rows stream back from the file just written: memory stays bounded.
    with store.fs.open(store.path(scores_dir(version, batch), "scores.parquet"), "rb") as fh:
        reader = pa.RecordBatchReader.from_batches(
            SCORE_SCHEMA, pq.ParquetFile(fh).iter_batches(batch_size=8192)
        )
        key = f"{version}|{batch}"
        lineage.replace_partition("scores", reader, asset=ASSET, partition_key=key, run_id=run_id)
    return PairScoresReport(version, batch, n, len(images), total / n if n else None, url)
