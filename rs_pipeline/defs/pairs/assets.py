"""Preference pairs as a Dagster asset: the data engine's second step, after caption candidates."""

from collections import Counter

import dagster as dg

from rs_pipeline.core.pairs.stage import PairsReport, run_pairs
from rs_pipeline.defs.automation.backfill import BACKFILL_POLICY, each_partition, run_metadata
from rs_pipeline.defs.partitions import SAME_BATCH, batch_partitions
from rs_pipeline.defs.previews import pair_previews
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings

PAIR_CHECKS = [
    dg.AssetCheckSpec(
        "no_image_in_both_splits", asset="preference_pairs", description="split by image"
    )
]

# Counts that add up over the partitions of a multi-partition (backfill) run.
PAIR_SUMS = ("pairs", "pairs_by_kind", "pairs_by_split", "pairs_by_judge", "judged_images")


def _pairs_metadata(rep: PairsReport) -> dict:
    agreement = {
        k: (None if v is None else round(v, 4)) for k, v in rep.agreement_with_oracle.items()
    }
    return {
        "pairs": sum(rep.by_kind.values()),
        "pairs_by_kind": dict(sorted(rep.by_kind.items())),
        "pairs_by_split": dict(sorted(rep.by_split.items())),
        "pairs_by_judge": dict(sorted(rep.by_judge.items())),
        "judged_images": rep.judged_images,
        "judge_agreement_with_oracle": agreement,
        "skipped": dict(sorted(rep.skipped.items())),
        "vqa": dict(sorted(rep.vqa.items())),
        "imports": dict(sorted(rep.imports.items())),
        "pairs_file": dg.MetadataValue.path(rep.url),
    }


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=[
        dg.AssetDep("caption_candidates", partition_mapping=SAME_BATCH),
        dg.AssetDep("rs_images", partition_mapping=SAME_BATCH),
    ],
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
    cfg, store, db = settings.load(), artifacts.store(), lineage.store()
    done = each_partition(context, lambda b: run_pairs(cfg, b, store, db, context.run_id))
    in_both = {k: r.samples_in_both_splits for k, r in done}
    md = run_metadata([(k, _pairs_metadata(r)) for k, r in done], PAIR_SUMS)
    reasons = sum((Counter(r.import_problems_by_reason) for _, r in done), Counter())
    problems = [p for _, r in done for p in r.import_problems]
    md |= pair_previews(db, [k for k, _ in done], dict(sorted(reasons.items())), problems)
    return dg.MaterializeResult(
        metadata=md,
        check_results=[
            dg.AssetCheckResult(
                check_name="no_image_in_both_splits",
                passed=not any(in_both.values()),
                metadata={"samples_in_both_splits": sum(in_both.values())},
            )
        ],
    )
