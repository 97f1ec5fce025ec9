"""The `evaluation_report` stage: every evaluated selection side by side, with plots."""

from __future__ import annotations

from dataclasses import dataclass

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.evaluation.report import ReportPaths, markdown_table, write_report
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.evaluation.summary import ReportTable, ScoreSplit, summarize
from rs_pipeline.core.layout import REPORT_ASSET
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import ALL_SELECTION


@dataclass(frozen=True)
class EvaluationReport:
    """The written report and the table it shows."""

    paths: ReportPaths
    table: ReportTable
    markdown: str  # the headline table, for the terminal and Dagster metadata


def current_results(cfg: PipelineConfig, lineage: LineageStore) -> list[EvalResult]:
    """Evaluation rows of the configured seeds and benchmarks, every evaluated selection."""
    benchmarks = [b.name for b in cfg.evaluation.benchmarks]
    rows = lineage.query(
        "SELECT selection, scorer, percent, seed, benchmark, metric, value, n_images, excluded, "
        "checkpoint FROM eval_results WHERE list_contains(?, seed) "
        "AND list_contains(?, benchmark) ORDER BY selection, seed, benchmark, metric",
        [list(cfg.finetune.seeds), benchmarks],
    ).to_pylist()
    return [EvalResult(**r) for r in rows]


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
    paths = write_report(store, REPORT_ASSET, results, score_splits(lineage, selections),
                         title="rs_pipeline evaluation report")  # fmt: skip
    table = summarize(results)
    return EvaluationReport(paths, table, markdown_table(table))
