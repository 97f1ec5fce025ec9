"""The score model as Dagster assets: train/register a version, then score every batch."""

import dagster as dg

from rs_pipeline.core.progress import StepLog
from rs_pipeline.core.scoring.apply import run_pair_scores
from rs_pipeline.core.scoring.stage import run_score_model
from rs_pipeline.defs.automation.backfill import BACKFILL_POLICY, each_partition, run_metadata
from rs_pipeline.defs.gpu import GPU_OP_TAGS, GPU_POOL
from rs_pipeline.defs.partitions import scorer_partitions, scores_partitions
from rs_pipeline.defs.previews import score_model_previews, score_previews
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings
from rs_pipeline.defs.training import TrainingLauncher, outcome_result, stage_job
from rs_pipeline.jobs.metadata import score_model_outcome

MODEL_CHECK = dg.AssetCheckSpec(
    "beats_threshold_and_clipscore",
    asset="score_model",
    description="held-out pairwise accuracy >= scoring.min_val_accuracy and >= clipscore",
)


@dg.asset(
    partitions_def=scorer_partitions,
    deps=[dg.AssetDep("preference_pairs", partition_mapping=dg.AllPartitionMapping())],
    check_specs=[MODEL_CHECK],
    code_version="1",
    group_name="scoring",
    kinds={"pytorch", "safetensors"},
    tags={"stage": "score_model"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def score_model(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    """One scorer version: trained on every batch's preference pairs (staged, as in the paper)
    or registered from a checkpoint; safetensors + config + metrics. `training.launcher`
    torchrun / k8s trains out of this process through Dagster Pipes."""
    cfg = settings.load()
    if cfg.training.launcher != "inprocess":
        job = stage_job("score_model", cfg, context, artifacts)
        return training_launcher.run_job(context, job, cfg.training)
    log = StepLog(context.log.info)  # a run-log event per ~10 s of steps, not per evaluation
    rep = run_score_model(cfg, context.partition_key, artifacts.store(), log=log)
    metrics = {
        "val_pairwise_accuracy": rep.val_accuracy,
        "clipscore_val_pairwise_accuracy": rep.clipscore_val_accuracy,
        "required": rep.required_accuracy(cfg.scoring.min_val_accuracy),
    }
    return outcome_result(
        score_model_outcome(rep, cfg.scoring.min_val_accuracy),
        previews=score_model_previews(rep.history, metrics),
    )


@dg.asset(
    partitions_def=scores_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=[
        dg.AssetDep(
            "score_model",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping("scorer_version"),
        ),
        dg.AssetDep(
            "caption_candidates",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping("batch"),
        ),
    ],
    code_version="1",
    group_name="scoring",
    kinds={"pytorch", "parquet", "duckdb"},
    tags={"stage": "pair_scores"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def pair_scores(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One score per (image, candidate text) of a batch under one scorer version; a backfill
    run scores several (version, batch) partitions in turn."""
    cfg, store, db = settings.load(), artifacts.store(), lineage.store()

    def score(key: str) -> dict:
        dims = _dimensions(key)
        rep = run_pair_scores(
            cfg,
            dims["scorer_version"],
            dims["batch"],
            store,
            db,
            context.run_id,
            log=context.log.info,
        )
        return {
            "pairs": rep.pairs,
            "images": rep.images,
            "mean_score": rep.mean_score,
            "scores": dg.MetadataValue.path(rep.url),
        }

    parts = each_partition(context, score)
    md = run_metadata(parts, ("pairs", "images"))
    if len(parts) > 1:  # the mean over every scored pair of the run
        scored = [(p["mean_score"], p["pairs"]) for _, p in parts if p["mean_score"] is not None]
        md["mean_score"] = sum(m * n for m, n in scored) / max(sum(n for _, n in scored), 1)
    return dg.MaterializeResult(metadata=md | _previews(db, [_dimensions(k) for k, _ in parts]))


def _previews(db, dims: list[dict[str, str]]) -> dict:
    """Histogram and extremes of the run's scores: one version over its batches (the usual
    run); a run over several versions shows none rather than mix scales."""
    versions = {d["scorer_version"] for d in dims}
    if len(versions) != 1:
        return {}
    return score_previews(db, versions.pop(), [d["batch"] for d in dims])


def _dimensions(key: str) -> dict[str, str]:
    """`{"scorer_version": ..., "batch": ...}` of a key (a range run yields plain strings)."""
    if isinstance(key, dg.MultiPartitionKey):
        return dict(key.keys_by_dimension)
    return dict(scores_partitions.get_partition_key_from_str(key).keys_by_dimension)
