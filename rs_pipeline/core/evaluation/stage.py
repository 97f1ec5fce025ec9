"""The `evaluation_report` stage: every evaluated selection side by side, with plots.

It reads lineage only: `eval_results` (CLIP metrics, and the VLM's `vqa_*` accuracies),
`bon_results`, `checkpoints` and `vlm_checkpoints`, `scores` and `selections`. Each family is
read for its own configured seeds (`finetune.seeds`, `vlm.seeds`); VLM rows only while
`vlm.enabled`, so turning the VLM off reports what is configured, as for CLIP benchmarks. The
RL (GRPO) checkpoints share the VLM tables under their own asset, `vlm_rl_checkpoints`, and are
read only while `vlm.rl.enabled` too; their VQA rows name the selection with `+rl`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.evaluation.bon_summary import GREEDY, BonResult, BonTable, summarize_bon
from rs_pipeline.core.evaluation.report import ReportPaths, markdown_table, write_report
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.evaluation.summary import (
    VQA_PREFIX,
    ReportTable,
    ScoreSplit,
    TrainedOn,
    summarize,
)
from rs_pipeline.core.layout import REPORT_ASSET, VLM_RL_ASSET
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import ALL_SELECTION


@dataclass(frozen=True)
class EvaluationReport:
    """The written report and the table it shows."""

    paths: ReportPaths
    table: ReportTable
    markdown: str  # the headline table, for the terminal and Dagster metadata
    vqa: ReportTable | None = None  # VQA accuracies of the VLM checkpoints, where any
    bon: BonTable | None = None  # best-of-N accuracy vs N, where any


CLIP_FAMILY, VLM_FAMILY, VLM_RL_FAMILY = "CLIP", "VLM", "VLM+RL"
_EVAL_COLUMNS = (
    "SELECT selection, scorer, percent, seed, benchmark, metric, value, n_images, excluded, "
    "checkpoint FROM eval_results"
)


def current_results(cfg: PipelineConfig, lineage: LineageStore) -> list[EvalResult]:
    """CLIP evaluation rows of the configured seeds and benchmarks, every evaluated selection.

    VQA accuracies (`vqa_*`) share the table and benchmark names; they are left out here.
    """
    benchmarks = [b.name for b in cfg.evaluation.benchmarks]
    rows = lineage.query(
        f"{_EVAL_COLUMNS} WHERE list_contains(?, seed) AND list_contains(?, benchmark) "
        "AND NOT starts_with(metric, ?) ORDER BY selection, seed, benchmark, metric",
        [list(cfg.finetune.seeds), benchmarks, VQA_PREFIX],
    ).to_pylist()
    return [EvalResult(**r) for r in rows]


def current_vqa_results(cfg: PipelineConfig, lineage: LineageStore) -> list[EvalResult]:
    """VQA accuracy rows (`vqa_*`) of the configured VLM seeds; none while the VLM is off, and
    none of the RL checkpoints (`<selection>+rl`) while `vlm.rl.enabled` is off."""
    if not cfg.vlm.enabled:
        return []
    rows = lineage.query(
        f"{_EVAL_COLUMNS} WHERE starts_with(metric, ?) AND list_contains(?, seed) "
        "AND (? OR asset <> ?) ORDER BY selection, seed, benchmark, metric",
        [VQA_PREFIX, list(cfg.vlm.seeds), cfg.vlm.rl.enabled, VLM_RL_ASSET],
    ).to_pylist()
    return [EvalResult(**r) for r in rows]


def current_bon_results(cfg: PipelineConfig, lineage: LineageStore) -> list[BonResult]:
    """Best-of-N rows of the configured VLM seeds and N (greedy at any N); none while off."""
    if not (cfg.vlm.enabled and cfg.vlm.bon.enabled):
        return []
    rows = lineage.query(
        "SELECT selection, seed, benchmark, scorer_version, strategy, n, accuracy, questions, "
        "checkpoint FROM bon_results WHERE list_contains(?, seed) "
        "AND (strategy = ? OR list_contains(?, n)) "
        "ORDER BY selection, seed, benchmark, strategy, n",
        [list(cfg.vlm.seeds), GREEDY, list(cfg.vlm.bon.n)],
    ).to_pylist()
    return [BonResult(**r) for r in rows]


def _trained(
    lineage: LineageStore, family: str, table: str, seeds: list[int], *, rl: bool | None = None
) -> list[TrainedOn]:
    """`rl`: only the rows `vlm_rl_checkpoints` wrote (True), all but those (False), all (None)."""
    rows = lineage.query(
        f"SELECT DISTINCT selection, seed FROM {table} WHERE list_contains(?, seed) "
        "AND (?::BOOLEAN IS NULL OR (asset = ?) = ?) ORDER BY selection, seed",
        [seeds, rl, VLM_RL_ASSET, rl],
    ).to_pylist()
    by_selection: dict[str, list[int]] = {}
    for r in rows:
        by_selection.setdefault(r["selection"], []).append(r["seed"])
    return [TrainedOn(family, sel, tuple(got)) for sel, got in by_selection.items()]


def trained_on(cfg: PipelineConfig, lineage: LineageStore) -> list[TrainedOn]:
    """Selections (and seeds) each family was fine-tuned on: CLIP from `checkpoints`, the VLM
    from `vlm_checkpoints` (only while `vlm.enabled`), VLM+RL from its rows written by
    `vlm_rl_checkpoints` (only while `vlm.rl.enabled` too), each at its configured seeds."""
    out = _trained(lineage, CLIP_FAMILY, "checkpoints", list(cfg.finetune.seeds))
    if not cfg.vlm.enabled:
        return out
    seeds = list(cfg.vlm.seeds)
    out += _trained(lineage, VLM_FAMILY, "vlm_checkpoints", seeds, rl=False)
    if cfg.vlm.rl.enabled:
        out += _trained(lineage, VLM_RL_FAMILY, "vlm_checkpoints", seeds, rl=True)
    return out


def score_splits(lineage: LineageStore, selections: list[str]) -> list[ScoreSplit]:
    """Kept vs dropped scores of each curated selection's scorer version (not `all@100`)."""
    splits = []
    for name in sorted(s for s in selections if s != ALL_SELECTION):
        rows = lineage.query(
            "SELECT s.score, k.caption_id IS NOT NULL AS kept FROM scores s "
            "LEFT JOIN (SELECT DISTINCT caption_id, scorer_version FROM selections "
            "WHERE selection = ?) k USING (caption_id, scorer_version) "
            "WHERE s.scorer_version = (SELECT any_value(scorer_version) FROM selections "
            "WHERE selection = ?) AND s.score IS NOT NULL ORDER BY s.caption_id",
            [name, name],
        ).to_pylist()
        if rows:
            splits.append(ScoreSplit.from_scores(name, [r["score"] for r in rows],
                                                 [r["kept"] for r in rows]))  # fmt: skip
    return splits


def run_evaluation_report(
    cfg: PipelineConfig, store: ArtifactStore, lineage: LineageStore
) -> EvaluationReport:
    """Summarise every evaluated selection into report.{md,html,json} + PNGs under the root."""
    results = current_results(cfg, lineage)
    if not results:
        raise FileNotFoundError(
            "no evaluation results for the configured seeds and benchmarks: materialize "
            "clip_checkpoints for at least one selection first"
        )
    selections = sorted({r.selection for r in results})
    vqa, bon, families = (
        current_vqa_results(cfg, lineage),
        current_bon_results(cfg, lineage),
        trained_on(cfg, lineage),
    )
    if not (vqa or bon or any(t.family != CLIP_FAMILY for t in families)):
        families = []  # CLIP alone: the family table would only repeat the headline's rows
    paths = write_report(
        store,
        REPORT_ASSET,
        [*results, *vqa],
        score_splits(lineage, selections),
        title="rs_pipeline evaluation report",
        bon=bon,
        trained_on=families,
    )
    table = summarize(results)
    return EvaluationReport(
        paths,
        table,
        markdown_table(table),
        vqa=summarize(vqa) if vqa else None,
        bon=summarize_bon(bon) if bon else None,
    )
