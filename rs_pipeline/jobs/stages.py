"""A pipeline stage run as a torchrun job: the same core function the in-process asset calls.

Every rank trains; rank 0 alone opens the lineage database (one DuckDB writer) and gets a
report back, which becomes the materialization's `Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.training import distributed
from rs_pipeline.jobs.metadata import (
    Outcome,
    clip_checkpoints_outcome,
    score_model_outcome,
    vlm_checkpoints_outcome,
)
from rs_pipeline.jobs.spec import TrainJob


def _lineage(job: TrainJob):
    from rs_pipeline.core.lineage import LineageStore

    return LineageStore(job.lineage_db) if distributed.world().is_main else None


def run_stage(job: TrainJob, log: Callable[[str], None] | None) -> Outcome | None:
    """Run the job's stage on this rank; rank 0 gets the Outcome, the others None."""
    cfg = PipelineConfig.model_validate(job.config)
    store = ArtifactStore(job.store_root, dict(job.storage_options))
    quiet = log or (lambda _: None)
    if job.kind == "score_model":
        from rs_pipeline.core.scoring.stage import run_score_model

        rep = run_score_model(cfg, job.partition_key, store, log=quiet)
        return score_model_outcome(rep, cfg.scoring.min_val_accuracy) if rep else None
    if job.kind == "clip_checkpoints":
        from rs_pipeline.core.finetune.stage import run_clip_checkpoints

        rep = run_clip_checkpoints(cfg, job.partition_key, store, _lineage(job), job.run_id, log)
        return clip_checkpoints_outcome(rep) if distributed.world().is_main else None
    if job.kind == "vlm_checkpoints":
        from rs_pipeline.core.vlm.stage import run_vlm_checkpoints

        rep = run_vlm_checkpoints(cfg, job.partition_key, store, _lineage(job), job.run_id, log)
        return vlm_checkpoints_outcome(rep) if distributed.world().is_main else None
    raise ValueError(f"run_stage: {job.kind!r} is not a stage job")
