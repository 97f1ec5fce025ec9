"""The code location: `dagster dev -w workspace.yaml`, `dg check defs`, the webserver and daemon.

`RS_PIPELINE_CONFIG` selects the configuration (a preset name or a YAML path; default `demo`).
"""

from __future__ import annotations

import os

import dagster as dg

from rs_pipeline.core.config import load_config
from rs_pipeline.defs.automation.conditions import automate, automation_sensor
from rs_pipeline.defs.automation.sensors import nightly_sensor, registry_sensor
from rs_pipeline.defs.gpu import step_executor
from rs_pipeline.defs.graph import ASSETS, BATCH_ASSETS
from rs_pipeline.defs.resources import build_resources

__all__ = ["ASSETS", "BATCH_ASSETS", "build_definitions", "defs"]


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
