"""The evaluation report: every selection's checkpoints side by side, mean ± std over seeds."""

import base64

import dagster as dg

from rs_pipeline.core.evaluation.report import ACCURACY_PNG, paired_markdown, table_records
from rs_pipeline.core.evaluation.stage import run_evaluation_report
from rs_pipeline.core.evaluation.tables import bon_records
from rs_pipeline.core.layout import REPORT_ASSET
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings


def _table(records: list[dict]) -> dg.TableMetadataValue:
    columns = [dg.TableColumn(name, "string") for name in records[0]]
    rows = [dg.TableRecord({k: str(v) for k, v in r.items()}) for r in records]
    return dg.MetadataValue.table(rows, schema=dg.TableSchema(columns=columns))


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
    png = base64.b64encode(store.fs.cat_file(store.path(REPORT_ASSET, ACCURACY_PNG))).decode()
    context.log.info("\n" + rep.markdown)
    vlm = {}
    if rep.vqa is not None:
        vlm["vqa"] = _table(table_records(rep.vqa, rep.vqa.headline_columns))
    if rep.bon is not None:
        vlm["best_of_n"] = _table(bon_records(rep.bon))
    return dg.MaterializeResult(
        metadata=vlm
        | {
            "headline": _table(table_records(rep.table)),
            "paired_differences": dg.MetadataValue.md(paired_markdown(rep.table)),
            "plot": dg.MetadataValue.md(f"![accuracy vs ratio](data:image/png;base64,{png})"),
            "selections": rep.table.selections,
            "seeds": list(rep.table.seeds),
            "report_html": dg.MetadataValue.path(rep.paths.html),
            "report_json": dg.MetadataValue.path(rep.paths.json),
            "report_md": dg.MetadataValue.path(rep.paths.markdown),
        }
    )
