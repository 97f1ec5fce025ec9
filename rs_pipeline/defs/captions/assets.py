"""The data engine as Dagster assets: caption candidates, then preference pairs."""

import dagster as dg

from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.pairs.stage import run_pairs
from rs_pipeline.defs.partitions import batch_partitions
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings

PAIR_CHECKS = [
    dg.AssetCheckSpec(
        "no_image_in_both_splits", asset="preference_pairs", description="split by image"
    )
]


@dg.asset(
    partitions_def=batch_partitions,
    deps=["rs_images"],
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
    report = run_captions(
        settings.load(), context.partition_key, artifacts.store(), lineage.store(), context.run_id
    )
    return dg.MaterializeResult(
        metadata={
            "images": report.images,
            "candidates": report.candidates,
            "failed": report.failed,
            "duplicates_dropped": report.duplicates_dropped,
            "candidates_by_captioner": report.by_captioner,
            "candidates_by_degradation": report.by_degradation,
            "mean_true_quality_by_captioner": report.mean_quality_by_captioner,
            "captions": dg.MetadataValue.path(report.url),
        }
    )


@dg.asset(
    partitions_def=batch_partitions,
    deps=["caption_candidates", "rs_images"],
    check_specs=PAIR_CHECKS,
    code_version="1",
    group_name="data_engine",
    kinds={"python", "parquet", "duckdb"},
    tags={"stage": "pairs"},
)
def preference_pairs(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One row per chosen > rejected pair of one image: judged caption pairs (best against
    each other candidate), VQA pairs from ground truth, and imported RSRM pairs."""
    rep = run_pairs(
        settings.load(), context.partition_key, artifacts.store(), lineage.store(), context.run_id
    )
    agreement = {
        k: (None if v is None else round(v, 4)) for k, v in rep.agreement_with_oracle.items()
    }
    return dg.MaterializeResult(
        metadata={
            "pairs": sum(rep.by_kind.values()),
            "pairs_by_kind": dict(sorted(rep.by_kind.items())),
            "pairs_by_split": dict(sorted(rep.by_split.items())),
            "pairs_by_judge": dict(sorted(rep.by_judge.items())),
            "judge_agreement_with_oracle": agreement,
            "skipped": dict(sorted(rep.skipped.items())),
            "vqa": dict(sorted(rep.vqa.items())),
            "imports": dict(sorted(rep.imports.items())),
            "pairs_file": dg.MetadataValue.path(rep.url),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_image_in_both_splits",
                passed=rep.samples_in_both_splits == 0,
                metadata={"samples_in_both_splits": rep.samples_in_both_splits},
            )
        ],
    )
