"""How GPU steps are scheduled: the `gpu` pool, the Kubernetes op tags, the per-step executor.

Locally the tags are inert and the pool serialises GPU steps; on Kubernetes
(`K8sRunLauncher` + `k8s_job_executor`) each GPU step's pod requests a GPU and lands on a
CUDA node. Op tags travel with every launch path (UI, backfills, automation).
"""

from __future__ import annotations

import os

import dagster as dg

GPU_POOL = "gpu"

# `nvidia.com/gpu.present` is the node label NVIDIA's GPU operator / feature discovery sets;
# the toleration matches the usual `nvidia.com/gpu:NoSchedule` taint on GPU node pools.
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "32Gi"},
                "limits": {"nvidia.com/gpu": "1", "memory": "64Gi"},
            }
        },
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    }
}

EXECUTOR_ENV = "RS_PIPELINE_EXECUTOR"


def step_executor() -> dg.ExecutorDefinition | None:
    """`k8s_job_executor` (one pod per step) when RS_PIPELINE_EXECUTOR=k8s, else the default."""
    choice = os.environ.get(EXECUTOR_ENV, "default")
    if choice == "default":
        return None
    if choice == "k8s":
        # Only inside a cluster; dagster-k8s is installed but loading it locally is wasted time.
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: set it to 'k8s' (one pod per step) or 'default'")
