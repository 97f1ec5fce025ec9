"""Curated subsets as a Dagster asset: the top k% of one scorer version's pairs."""

import dagster as dg

from rs_pipeline.core.names import ALL_SELECTION
from rs_pipeline.core.selection.stage import run_curated_subsets
from rs_pipeline.defs.partitions import scorer_partitions, selection_partitions
from rs_pipeline.defs.previews import subset_previews
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings


@dg.asset(
    partitions_def=scorer_partitions,
    deps=[
        dg.AssetDep(
            "pair_scores",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping("scorer_version"),
        )
    ],
    code_version="1",
    group_name="selection",
    kinds={"python", "parquet", "duckdb"},
    tags={"stage": "curated_subsets"},
)
def curated_subsets(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One row per kept (image, caption) pair of each selection `<scorer_version>@<percent>`,
    with its score, rank and the reason it was kept."""
    cfg, db = settings.load(), lineage.store()
    rep = run_curated_subsets(cfg, context.partition_key, artifacts.store(), db, context.run_id)
    # Each selection becomes a clip_checkpoints partition; `all@100` is the uncurated baseline.
    names = [*rep.kept, *([ALL_SELECTION] if cfg.finetune.include_all else [])]
    context.instance.add_dynamic_partitions(selection_partitions.name, names)
    churn = {
        name: {"kept": c.kept, "added": c.added, "dropped": c.dropped, "jaccard": c.jaccard}
        for name, c in rep.churn.items()
    }
    return dg.MaterializeResult(
        metadata={
            "pool_pairs": rep.pool,
            "batches": rep.batches,
            "kept_by_selection": rep.kept,
            "previous_scorer_version": rep.previous_version or "",
            "churn_vs_previous": dg.MetadataValue.json(churn),
            "selections": dg.MetadataValue.json(rep.urls),
            "webdataset_shards": dg.MetadataValue.json(rep.shards),
        }
        | subset_previews(db, rep.version, rep.pool)
    )
