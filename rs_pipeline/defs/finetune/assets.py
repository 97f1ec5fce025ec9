"""CLIP fine-tuned on each curated selection (and on `all@100`), one checkpoint per seed."""

import dagster as dg

from rs_pipeline.core.finetune.stage import run_clip_checkpoints
from rs_pipeline.core.progress import StepLog
from rs_pipeline.defs.gpu import GPU_OP_TAGS, GPU_POOL
from rs_pipeline.defs.partitions import selection_partitions
from rs_pipeline.defs.previews import checkpoint_previews
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings
from rs_pipeline.defs.training import TrainingLauncher, outcome_result, stage_job
from rs_pipeline.jobs.metadata import clip_checkpoints_outcome


@dg.asset(
    partitions_def=selection_partitions,
    # A selection `<version>@<pct>` reads curated_subsets[<version>]; `all@100` reads every
    # batch's candidates. Dagster has no built-in mapping for "prefix before @", so both
    # upstreams are declared whole; re-training is cheap when nothing changed (checkpoints
    # whose plan and manifest digest match are reused, not retrained).
    deps=[
        dg.AssetDep("curated_subsets", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("caption_candidates", partition_mapping=dg.AllPartitionMapping()),
    ],
    code_version="1",
    group_name="finetune",
    kinds={"pytorch", "safetensors"},
    tags={"stage": "clip_checkpoints"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def clip_checkpoints(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    """One open_clip checkpoint per configured seed, trained for the same number of steps on
    this selection's pairs, with its evaluation on every configured benchmark. `training.launcher`
    torchrun / k8s trains out of this process through Dagster Pipes."""
    cfg = settings.load()
    if cfg.training.launcher != "inprocess":
        job = stage_job("clip_checkpoints", cfg, context, artifacts, lineage)
        return training_launcher.run_job(context, job, cfg.training)
    rep = run_clip_checkpoints(
        cfg=cfg,
        selection=context.partition_key,
        store=artifacts.store(),
        lineage=lineage.store(),
        run_id=context.run_id,
        log=StepLog(context.log.info),  # step lines at most every ~10 s
    )
    return outcome_result(
        clip_checkpoints_outcome(rep), previews=checkpoint_previews(rep.runs, rep.results)
    )
