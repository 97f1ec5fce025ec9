"""The ingest stage as a Dagster asset."""

import dagster as dg

from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.defs.partitions import batch_partitions
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings

CHECKS = [
    dg.AssetCheckSpec("unique_sample_ids", asset="rs_images", description="one row per image"),
    dg.AssetCheckSpec(
        "counts_reconcile",
        asset="rs_images",
        description="inputs = unique + duplicates + quarantined",
    ),
]


@dg.asset(
    partitions_def=batch_partitions,
    check_specs=CHECKS,
    code_version="1",
    group_name="ingest",
    kinds={"python", "parquet", "duckdb"},
    tags={"stage": "ingest"},
)
def rs_images(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One manifest row per unique image (content hash) of a batch; a quarantine row per
    rejected input, with its reason."""
    report = run_ingest(
        settings.load(), context.partition_key, artifacts.store(), lineage.store(), context.run_id
    )
    c = report.counts
    return dg.MaterializeResult(
        metadata={
            "inputs": c.inputs,
            "unique": c.unique,
            "duplicates": c.duplicates,
            "quarantined": c.quarantined,
            "quarantined_by_reason": dict(sorted(c.by_reason.items())),
            "inputs_by_source": dict(sorted(c.by_source.items())),
            "samples": dg.MetadataValue.path(report.samples_url),
            "quarantine": dg.MetadataValue.path(report.quarantine_url),
            "images": dg.MetadataValue.path(report.images_url),
            "preview": dg.MetadataValue.json(report.preview),
        },
        check_results=[
            dg.AssetCheckResult(check_name="unique_sample_ids", passed=report.ids_unique),
            dg.AssetCheckResult(
                check_name="counts_reconcile",
                passed=c.reconciles,
                metadata={"inputs": c.inputs, "accounted": c.unique + c.duplicates + c.quarantined},
            ),
        ],
        data_version=dg.DataVersion(report.data_version),
    )
