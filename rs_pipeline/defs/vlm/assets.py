"""The VLM half: SFT checkpoints per selection, best-of-N answers ranked by the scorer, and
GRPO from each SFT checkpoint rewarded by it."""

import dagster as dg

from rs_pipeline.core.progress import StepLog
from rs_pipeline.core.vlm.bon_stage import run_bon_eval
from rs_pipeline.core.vlm.rl_stage import run_vlm_rl_checkpoints
from rs_pipeline.core.vlm.stage import run_vlm_checkpoints
from rs_pipeline.defs.gpu import GPU_OP_TAGS, GPU_POOL
from rs_pipeline.defs.partitions import selection_partitions
from rs_pipeline.defs.previews import bon_previews, checkpoint_previews
from rs_pipeline.defs.resources import (
    ArtifactStoreResource,
    LineageResource,
    PipelineSettings,
    ScorerServiceResource,
)
from rs_pipeline.defs.training import TrainingLauncher, outcome_result, stage_job
from rs_pipeline.jobs.metadata import vlm_checkpoints_outcome, vlm_rl_checkpoints_outcome


@dg.asset(
    partitions_def=selection_partitions,
    # Like clip_checkpoints: a selection reads curated_subsets[<version>] (or, for all@100,
    # every batch's candidates) and the VQA pairs of its images; declared whole, and matching
    # checkpoints are reused, so a re-materialization retrains nothing that did not change.
    deps=[
        dg.AssetDep("curated_subsets", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("caption_candidates", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("preference_pairs", partition_mapping=dg.AllPartitionMapping()),
    ],
    code_version="1",
    group_name="vlm",
    kinds={"pytorch", "safetensors"},
    tags={"stage": "vlm_checkpoints"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def vlm_checkpoints(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    """A Qwen2-VL-family model fine-tuned (LoRA on real checkpoints, full on tiny) on this
    selection's captions and VQA answers, one per `vlm.seeds`, evaluated on VQA questions.
    `training.launcher` torchrun / k8s trains out of this process through Dagster Pipes."""
    cfg = settings.load()
    if cfg.training.launcher != "inprocess":
        job = stage_job("vlm_checkpoints", cfg, context, artifacts, lineage)
        return training_launcher.run_job(context, job, cfg.training)
    rep = run_vlm_checkpoints(
        cfg=cfg,
        selection=context.partition_key,
        store=artifacts.store(),
        lineage=lineage.store(),
        run_id=context.run_id,
        log=StepLog(context.log.info),  # step lines at most every ~10 s
    )
    return outcome_result(
        vlm_checkpoints_outcome(rep), previews=checkpoint_previews(rep.runs, rep.results)
    )


@dg.asset(
    partitions_def=selection_partitions,
    deps=[
        dg.AssetDep("vlm_checkpoints"),  # the same selection's checkpoints
        dg.AssetDep("score_model", partition_mapping=dg.AllPartitionMapping()),
    ],
    code_version="1",
    group_name="vlm",
    kinds={"pytorch", "parquet", "duckdb"},
    tags={"stage": "bon_eval"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def bon_eval(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
    scorer_service: ScorerServiceResource,
) -> dg.MaterializeResult:
    """N sampled answers per question from each checkpoint of this selection, one kept by the
    scorer, against greedy, random, majority vote and a CLIP-score pick, at every N."""
    cfg = scorer_service.apply(settings.load())
    rep = run_bon_eval(
        cfg=cfg,
        selection=context.partition_key,
        store=artifacts.store(),
        lineage=lineage.store(),
        run_id=context.run_id,
        log=context.log.info,
    )
    return dg.MaterializeResult(
        metadata={
            "scorer_version": rep.scorer_version,
            "clip_scorer_version": rep.clip_version,
            "questions": rep.questions,
            "n": list(cfg.vlm.bon.n),
            "selection": rep.selection,
            "accuracy_by_strategy_and_n": dg.MetadataValue.json(rep.accuracy_table()),
            "bon": dg.MetadataValue.path(rep.url),
        }
        | bon_previews(rep.accuracy_table())
    )


@dg.asset(
    partitions_def=selection_partitions,
    deps=[
        dg.AssetDep("vlm_checkpoints"),  # the same selection's SFT checkpoints: GRPO starts there
        dg.AssetDep("score_model", partition_mapping=dg.AllPartitionMapping()),  # the reward
    ],
    code_version="1",
    group_name="vlm",
    kinds={"pytorch", "safetensors"},
    tags={"stage": "vlm_rl_checkpoints"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def vlm_rl_checkpoints(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
    scorer_service: ScorerServiceResource,
) -> dg.MaterializeResult:
    """GRPO (TRL) from each seed's SFT checkpoint of this selection, on its VQA questions,
    rewarded by the scorer's margin over the reference answer; evaluated like the SFT ones."""
    rep = run_vlm_rl_checkpoints(
        cfg=scorer_service.apply(settings.load()),
        selection=context.partition_key,
        store=artifacts.store(),
        lineage=lineage.store(),
        run_id=context.run_id,
        log=StepLog(context.log.info),
    )
    return outcome_result(
        vlm_rl_checkpoints_outcome(rep),
        previews=checkpoint_previews(rep.runs, rep.results, train_metric="final_reward"),
    )
