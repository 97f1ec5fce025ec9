"""Caption candidates as a Dagster asset: the data engine's first step (`pairs/` is its second)."""

import dagster as dg

from rs_pipeline.core.captions.stage import CaptionReport, run_captions
from rs_pipeline.defs.automation.backfill import BACKFILL_POLICY, each_partition, run_metadata
from rs_pipeline.defs.partitions import SAME_BATCH, batch_partitions
from rs_pipeline.defs.previews import caption_previews
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings

# Counts that add up over the partitions of a multi-partition (backfill) run.
CAPTION_SUMS = (
    "images",
    "candidates",
    "failed",
    "duplicates_dropped",
    "candidates_by_captioner",
    "candidates_by_degradation",
)


def _captions_metadata(report: CaptionReport) -> dict:
    return {
        "images": report.images,
        "candidates": report.candidates,
        "failed": report.failed,
        "duplicates_dropped": report.duplicates_dropped,
        "candidates_by_captioner": report.by_captioner,
        "candidates_by_degradation": report.by_degradation,
        "mean_true_quality_by_captioner": report.mean_quality_by_captioner,
        "injected_noise": report.noise,
        "captions": dg.MetadataValue.path(report.url),
    }


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=[dg.AssetDep("rs_images", partition_mapping=SAME_BATCH)],
    code_version="1",
    group_name="data_engine",
    kinds={"python", "parquet", "duckdb"},
    tags={"stage": "captions"},
)
def caption_candidates(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One row per (image, captioner, text): candidate captions tagged with their captioner,
    degradation and, where ground truth exists, their true quality."""
    cfg, store, db = settings.load(), artifacts.store(), lineage.store()
    done = each_partition(
        context, lambda b: run_captions(cfg, b, store, db, context.run_id, log=context.log.info)
    )
    md = run_metadata([(k, _captions_metadata(r)) for k, r in done], CAPTION_SUMS)
    # Means do not add up over partitions: a backfill run's are in `by_partition`.
    quality = done[0][1].mean_quality_by_captioner if len(done) == 1 else {}
    md |= caption_previews(db, [k for k, _ in done], md["candidates_by_captioner"], quality)
    return dg.MaterializeResult(metadata=md)
