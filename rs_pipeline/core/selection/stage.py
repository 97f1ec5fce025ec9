"""The `curated_subsets` stage: top-k% selections of one scorer version over every batch."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.stage import captions_dir
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.ingest.stage import batch_dir
from rs_pipeline.core.layout import scores_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.records import SELECTION_SCHEMA
from rs_pipeline.core.selection.topk import Churn, ScoredPair, churn, select_top, selection_name
from rs_pipeline.core.selection.webdataset import write_shards

ASSET = "curated_subsets"
_BATCH = re.compile(r"batch=([^/]+)/scores\.parquet$")


def subsets_dir(version: str) -> str:
    """Folder of one scorer version's selections under the artifact root."""
    return f"{ASSET}/version={version}"


@dataclass
class SubsetsReport:
    """Selections written for one scorer version, and how they moved since the last version."""

    version: str
    batches: list[str]
    pool: int
    kept: dict[str, int] = field(default_factory=dict)  # selection -> pairs
    urls: dict[str, str] = field(default_factory=dict)
    shards: dict[str, list[str]] = field(default_factory=dict)  # selection -> WebDataset tars
    churn: dict[str, Churn] = field(default_factory=dict)  # selection -> against previous
    previous_version: str | None = None


def scored_batches(store: ArtifactStore, version: str) -> list[str]:
    """Batches that have pair_scores under `version`, sorted."""
    found = store.fs.glob(store.path(f"pair_scores/version={version}", "batch=*", "*.parquet"))
    return sorted(m.group(1) for f in found if (m := _BATCH.search(f)))


def _pool(cfg: PipelineConfig, store: ArtifactStore, version: str, batch: str):
    """ScoredPairs of one batch, with texts and strata, keyed by caption id."""
    scores = store.read_table(scores_dir(version, batch), "scores.parquet").to_pylist()
    caps = store.read_table(captions_dir(batch), "captions.parquet").to_pylist()
    text = {c["caption_id"]: c["text"] for c in caps}
    samples = store.read_table(batch_dir(batch), "samples.parquet").to_pylist()
    stratum_of = {s["sample_id"]: s.get(cfg.selection.stratify) or "" for s in samples}
    offset = image_means(scores) if cfg.selection.score_norm == "per_image" else {}
    return [
        (ScoredPair(r["sample_id"], r["caption_id"], r["score"] - offset.get(r["sample_id"], 0.0),
                    stratum_of[r["sample_id"]]), batch, text[r["caption_id"]])
        for r in scores
    ]  # fmt: skip


def image_means(scores: list[dict]) -> dict[str, float]:
    """Mean candidate score of each image: subtracted, it leaves how a caption ranks among its
    image's candidates, which is what a pairwise-trained scorer actually learned."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in scores:
        acc = sums[r["sample_id"]]
        acc[0], acc[1] = acc[0] + r["score"], acc[1] + 1
    return {sid: total / n for sid, (total, n) in sums.items()}


def _previous(lineage: LineageStore, version: str) -> str | None:
    rows = lineage.query(
        "SELECT partition_key FROM writes WHERE table_name = 'selections' AND asset = ? "
        "AND partition_key <> ? ORDER BY written_at DESC LIMIT 1",
        [ASSET, version],
    ).to_pylist()
    return rows[0]["partition_key"] if rows else None


def run_curated_subsets(
    cfg: PipelineConfig, version: str, store: ArtifactStore, lineage: LineageStore, run_id: str
) -> SubsetsReport:
    """Select the configured top percents of every scored batch; Parquet + lineage rows."""
    batches = scored_batches(store, version)
    if not batches:
        raise FileNotFoundError(
            f"no pair_scores for scorer_version {version!r}: materialize pair_scores for it first"
        )
    pool = [item for b in batches for item in _pool(cfg, store, version, b)]
    by_caption = {p.caption_id: (b, t) for p, b, t in pool}
    rep = SubsetsReport(version, batches, len(pool), previous_version=_previous(lineage, version))
    tables = []
    note = " (score centred on its image's mean)" if cfg.selection.score_norm == "per_image" else ""
    for ratio in cfg.selection.ratios:
        name = selection_name(version, ratio)
        kept = select_top([p for p, _, _ in pool], ratio, cfg.selection.stratify != "none",
                          cfg.selection.max_per_image)  # fmt: skip
        rows = [{"selection": name, "scorer_version": version, "batch": by_caption[k.caption_id][0],
                 "sample_id": k.sample_id, "caption_id": k.caption_id,
                 "text": by_caption[k.caption_id][1], "score": k.score, "rank": k.rank,
                 "reason": k.reason + note} for k in kept]  # fmt: skip
        table = pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA)
        rep.urls[name] = store.write_table(table, subsets_dir(version), f"{name}.parquet")
        rep.kept[name] = len(rows)
        if cfg.selection.webdataset:
            rep.shards[name] = write_shards(
                store, f"{subsets_dir(version)}/webdataset", name, table, cfg.selection.shard_size
            )
        tables.append(table)
        if rep.previous_version:
            rep.churn[name] = churn(
                _caption_ids(lineage, selection_name(rep.previous_version, ratio)),
                {k.caption_id for k in kept},
            )
    all_rows = pa.concat_tables(tables) if tables else SELECTION_SCHEMA.empty_table()
    lineage.replace_partition("selections", all_rows, asset=ASSET, partition_key=version,
                              run_id=run_id)  # fmt: skip
    return rep


def _caption_ids(lineage: LineageStore, selection: str) -> set[str]:
    table = lineage.query("SELECT caption_id FROM selections WHERE selection = ?", [selection])
    return set(table.column("caption_id").to_pylist())
