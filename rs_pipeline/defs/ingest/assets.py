"""The ingest stage as a Dagster asset."""

import dagster as dg

from rs_pipeline.core.ingest.stage import IngestReport, run_ingest
from rs_pipeline.defs.automation.backfill import BACKFILL_POLICY, each_partition, run_metadata
from rs_pipeline.defs.partitions import batch_partitions
from rs_pipeline.defs.previews import ingest_previews
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings

CHECKS = [
    dg.AssetCheckSpec("unique_sample_ids", asset="rs_images", description="one row per image"),
    dg.AssetCheckSpec(
        "counts_reconcile",
        asset="rs_images",
        description="inputs = unique + duplicates + quarantined",
    ),
]

# Counts that add up over the partitions of a multi-partition (backfill) run.
SUMMED = (
    "inputs",
    "unique",
    "duplicates",
    "quarantined",
    "quarantined_by_reason",
    "inputs_by_source",
)


def _ingest_metadata(report: IngestReport) -> dict:
    c = report.counts
    return {
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
    }


def _checks(reports: list[IngestReport]) -> list[dg.AssetCheckResult]:
    """One result per check for the whole run: it passes when every partition passes."""
    per_key = {r.batch: r.counts for r in reports}
    return [
        dg.AssetCheckResult(
            check_name="unique_sample_ids", passed=all(r.ids_unique for r in reports)
        ),
        dg.AssetCheckResult(
            check_name="counts_reconcile",
            passed=all(c.reconciles for c in per_key.values()),
            metadata={
                "inputs": sum(c.inputs for c in per_key.values()),
                "accounted": sum(c.unique + c.duplicates + c.quarantined for c in per_key.values()),
            },
        ),
    ]


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
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
    rejected input, with its reason. A backfill run ingests several batches in turn."""
    cfg, store, db = settings.load(), artifacts.store(), lineage.store()
    done = each_partition(context, lambda b: run_ingest(cfg, b, store, db, context.run_id))
    reports = [r for _, r in done]
    md = run_metadata([(k, _ingest_metadata(r)) for k, r in done], SUMMED)
    md |= ingest_previews(store, db, [k for k, _ in done], [s for r in reports for s in r.preview])
    # A DataVersion names one partition's content; a multi-partition run has none to give.
    version = dg.DataVersion(reports[0].data_version) if len(reports) == 1 else None
    return dg.MaterializeResult(metadata=md, check_results=_checks(reports), data_version=version)
