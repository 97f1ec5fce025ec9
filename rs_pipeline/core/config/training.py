"""Where training steps run: in the Dagster step's process, under torchrun, or in a pod."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rs_pipeline.core.config.base import Section


class TrainingConfig(Section):
    """How score_model, clip_checkpoints and vlm_checkpoints launch their training.

    `inprocess` (the default) trains in the step's own process, as always. `torchrun` starts
    `nproc_per_node` processes on this machine through Dagster Pipes; `k8s` submits one pod
    with `nproc_per_node` GPUs on the `gpu` pool. The global batch and learning rate are the
    stage's own settings at every world size.
    """

    launcher: Literal["inprocess", "torchrun", "k8s"] = "inprocess"
    nproc_per_node: int = Field(1, ge=1, le=64, description="processes (GPUs) per node")
    image: str | None = Field(None, description="k8s: the image the training pod runs")
    namespace: str | None = Field(None, description="k8s: namespace (default: the current one)")
    cpu_per_process: int = Field(4, ge=1, description="k8s: CPU request per process")
    memory_gi_per_process: int = Field(32, ge=1, description="k8s: memory (GiB) per process")

    @model_validator(mode="after")
    def _k8s_has_image(self) -> TrainingConfig:
        if self.launcher == "k8s" and not self.image:
            raise ValueError(
                "training.launcher k8s needs training.image (the rs_pipeline image, e.g. "
                "registry/rs-pipeline:TAG built from infra/Dockerfile)"
            )
        return self
