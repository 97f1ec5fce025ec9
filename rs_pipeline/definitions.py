"""The code location: `dagster dev -w workspace.yaml`, `dg check defs`, the webserver and daemon.

`RS_PIPELINE_CONFIG` selects the configuration (a preset name or a YAML path; default `demo`).
"""

from __future__ import annotations

import os

import dagster as dg

from rs_pipeline.core.config import load_config
from rs_pipeline.defs.automation.conditions import automate, automation_sensor
from rs_pipeline.defs.automation.schedules import nightly_sensor
from rs_pipeline.defs.automation.sensors import registry_sensor
from rs_pipeline.defs.captions.assets import caption_candidates, preference_pairs
from rs_pipeline.defs.evaluation.assets import evaluation_report
from rs_pipeline.defs.finetune.assets import clip_checkpoints
from rs_pipeline.defs.gpu import step_executor
from rs_pipeline.defs.ingest.assets import rs_images
from rs_pipeline.defs.resources import build_resources
from rs_pipeline.defs.scoring.assets import pair_scores, score_model
from rs_pipeline.defs.selection.assets import curated_subsets

BATCH_ASSETS = [rs_images, caption_candidates, preference_pairs]
ASSETS = [
    *BATCH_ASSETS,
    score_model,
    pair_scores,
    curated_subsets,
    clip_checkpoints,
    evaluation_report,
]


def build_definitions(config: str | None = None) -> dg.Definitions:
    """Definitions for one configuration."""
    spec = config or os.environ.get("RS_PIPELINE_CONFIG", "demo")
    auto = load_config(spec).automation
    return dg.Definitions(
        assets=automate(ASSETS, spec),
        sensors=[
            nightly_sensor(auto.nightly_cron, auto.sensor_interval_s),
            registry_sensor(auto.sensor_interval_s),
            automation_sensor(auto.sensor_interval_s),
        ],
        resources=build_resources(spec),
        executor=step_executor(),  # k8s_job_executor on Kubernetes: one pod per step
    )


defs = build_definitions()
