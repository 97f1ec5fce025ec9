"""The `curated_subsets` stage: top-k% selections of one scorer version over every batch."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.layout import (
    CAPTIONS_FILE,
    SCORES_FILE,
    SUBSETS_ASSET,
    captions_dir,
    images_dir,
    scored_batches,
    scores_dir,
    subsets_dir,
)
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import selection_name
from rs_pipeline.core.records import SELECTION_SCHEMA
from rs_pipeline.core.selection.topk import Churn, ScoredPair, churn, select_top
from rs_pipeline.core.selection.webdataset import write_shards


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


def _pool(cfg: PipelineConfig, store: ArtifactStore, version: str, batch: str):
    """ScoredPairs of one batch, with texts and strata, keyed by caption id."""
    scores = store.read_table(scores_dir(version, batch), SCORES_FILE).to_pylist()
    caps = store.read_table(captions_dir(batch), CAPTIONS_FILE).to_pylist()
    text = {c["caption_id"]: c["text"] for c in caps}
    samples = store.read_table(images_dir(batch), "samples.parquet").to_pylist()
    stratum_of = {s["sample_id"]: s.get(cfg.selection.stratify) or "" for s in samples}
    offset = image_means(scores) if cfg.selection.score_norm == "per_image" else {}
    pairs = []
    for r in scores:
        sid, cid = r["sample_id"], r["caption_id"]
        score = r["score"] - offset.get(sid, 0.0)
        pairs.append((ScoredPair(sid, cid, score=score, stratum=stratum_of[sid]), batch, text[cid]))
    return pairs


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
        [SUBSETS_ASSET, version],
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
        kept = select_top(
            [p for p, _, _ in pool],
            ratio,
            stratified=cfg.selection.stratify != "none",
            max_per_image=cfg.selection.max_per_image,
        )
        rows = [
            {
                "selection": name,
                "scorer_version": version,
                "batch": by_caption[k.caption_id][0],
                "sample_id": k.sample_id,
                "caption_id": k.caption_id,
                "text": by_caption[k.caption_id][1],
                "score": k.score,
                "rank": k.rank,
                "reason": k.reason + note,
            }
            for k in kept
        ]
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
    lineage.replace_partition(
        "selections", all_rows, asset=SUBSETS_ASSET, partition_key=version, run_id=run_id
    )
    return rep


def _caption_ids(lineage: LineageStore, selection: str) -> set[str]:
    table = lineage.query("SELECT caption_id FROM selections WHERE selection = ?", [selection])
    return set(table.column("caption_id").to_pylist())
