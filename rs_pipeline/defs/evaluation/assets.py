"""The evaluation report: every selection's checkpoints side by side, mean ± std over seeds."""

import dagster as dg

from rs_pipeline.core.evaluation.report import (
    ACCURACY_PNG,
    BON_PNG,
    HISTOGRAM_PNG,
    paired_markdown,
    table_records,
)
from rs_pipeline.core.evaluation.stage import run_evaluation_report
from rs_pipeline.core.evaluation.tables import bon_records
from rs_pipeline.core.layout import REPORT_ASSET
from rs_pipeline.defs.previews import png, table
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings

# Report plots shown in the metadata (key -> file, alt text), where the report has them.
PLOTS = {
    "plot": (ACCURACY_PNG, "accuracy vs ratio"),
    "score_histograms": (HISTOGRAM_PNG, "kept vs dropped scores"),
    "bon_plot": (BON_PNG, "best-of-N accuracy vs N"),
}


@dg.asset(
    deps=[
        dg.AssetDep("clip_checkpoints", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("pair_scores", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("vlm_checkpoints", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("bon_eval", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("vlm_rl_checkpoints", partition_mapping=dg.AllPartitionMapping()),
    ],
    code_version="1",
    group_name="evaluation",
    kinds={"python", "html"},
    tags={"stage": "evaluation_report"},
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One row per selection, one column per benchmark metric (mean ± std over seeds); plots of
    accuracy against selection ratio and of kept vs dropped scores; MD/HTML/JSON files."""
    store = artifacts.store()
    rep = run_evaluation_report(settings.load(), store, lineage.store())
    context.log.info("\n" + rep.markdown)
    vlm = {}
    if rep.vqa is not None:
        vlm["vqa"] = table(table_records(rep.vqa, rep.vqa.headline_columns))
    if rep.bon is not None:
        vlm["best_of_n"] = table(bon_records(rep.bon))
    plots = {
        key: png(store.fs.cat_file(store.path(REPORT_ASSET, name)), alt=alt)
        for key, (name, alt) in PLOTS.items()
        if name in rep.paths.plots
    }
    return dg.MaterializeResult(
        metadata=vlm
        | plots
        | {
            "headline": table(table_records(rep.table)),
            "paired_differences": dg.MetadataValue.md(paired_markdown(rep.table)),
            "selections": rep.table.selections,
            "seeds": list(rep.table.seeds),
            "report_html": dg.MetadataValue.path(rep.paths.html),
            "report_json": dg.MetadataValue.path(rep.paths.json),
            "report_md": dg.MetadataValue.path(rep.paths.markdown),
        }
    )
