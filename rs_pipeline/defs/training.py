"""How a training asset launches its trainer: in process, torchrun via Pipes, or a k8s pod.

`training.launcher` in the config chooses; this resource wraps Dagster Pipes' clients:
`PipesSubprocessClient` runs `torchrun --nproc_per_node N -m rs_pipeline.jobs.train JOB`
on this machine, `PipesK8sClient` the same command in one pod on the `gpu` pool (the node
selector and tolerations of defs/gpu.py, `nvidia.com/gpu: N`). Log lines and the final
materialization come back through Pipes.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from rs_pipeline.core.config import PipelineConfig, TrainingConfig
from rs_pipeline.defs.gpu import GPU_OP_TAGS
from rs_pipeline.jobs.metadata import Outcome
from rs_pipeline.jobs.spec import TrainJob

JOB_MODULE = "rs_pipeline.jobs.train"
CONTAINER = "train"


def torchrun_args(nproc: int, job_arg: str) -> list[str]:
    """torchrun's arguments for one node of `nproc` processes running the job entry point."""
    return ["--standalone", f"--nproc_per_node={nproc}", "-m", JOB_MODULE, job_arg]


def local_command(nproc: int, job_path: str) -> list[str]:
    """This interpreter's torchrun (the venv's torch), so no PATH lookup can pick another."""
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_args(nproc, job_path)]


def training_pod_spec(training: TrainingConfig, job: TrainJob) -> dict[str, Any]:
    """The pod spec PipesK8sClient submits: the image running torchrun over the inline job,
    `nproc_per_node` GPUs, and the `gpu` pool's node selector and tolerations."""
    n = training.nproc_per_node
    pool = GPU_OP_TAGS["dagster-k8s/config"]["pod_spec_config"]
    gpus = {"nvidia.com/gpu": str(n)}
    requests = gpus | {
        "cpu": str(training.cpu_per_process * n),
        "memory": f"{training.memory_gi_per_process * n}Gi",
    }
    container = {
        "name": CONTAINER,
        "image": training.image,
        "command": ["torchrun", *torchrun_args(n, job.to_json())],
        "resources": {"requests": requests, "limits": dict(gpus)},
        # NCCL moves tensors through /dev/shm; a container's default 64 MiB is too small
        "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}],
    }
    return {
        "containers": [container],
        "node_selector": copy.deepcopy(pool["node_selector"]),
        "tolerations": copy.deepcopy(pool["tolerations"]),
        "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory"}}],
        "restart_policy": "Never",
    }


def outcome_result(
    outcome: Outcome, check_specs: dict[str, str] | None = None, previews: dict | None = None
):
    """An in-process Outcome as the asset's MaterializeResult (the Pipes path's twin), plus
    the reviewer's previews (defs/previews.py: tables, plots) that only this path can draw."""
    kinds = {"json": dg.MetadataValue.json, "path": dg.MetadataValue.path}
    metadata = {k: kinds.get(m.kind, lambda v: v)(m.value) for k, m in outcome.metadata.items()}
    metadata |= previews or {}
    checks = [
        dg.AssetCheckResult(
            check_name=c.name,
            passed=c.passed,
            metadata=c.metadata,
            severity=dg.AssetCheckSeverity(c.severity),
        )
        for c in outcome.checks
    ]
    version = dg.DataVersion(outcome.data_version) if outcome.data_version else None
    return dg.MaterializeResult(metadata=metadata, check_results=checks, data_version=version)


def pipes_result(invocation) -> dg.MaterializeResult:
    """The materialization (and check results) rank 0 reported through Pipes, as one result."""
    results = invocation.get_results()
    mats = [r for r in results if isinstance(r, dg.MaterializeResult)]
    if len(mats) != 1:
        raise RuntimeError(f"the training job reported {len(mats)} materializations, not 1")
    checks = [r for r in results if isinstance(r, dg.AssetCheckResult)]
    return dg.MaterializeResult(
        metadata=mats[0].metadata, check_results=checks, data_version=mats[0].data_version
    )


class TrainingLauncher(dg.ConfigurableResource):
    """Runs a training job out of the step's process, as `training.launcher` says."""

    def run_job(
        self, context: dg.AssetExecutionContext, job: TrainJob, training: TrainingConfig
    ) -> dg.MaterializeResult:
        """Launch `job` (torchrun locally or one k8s pod) and return its materialization."""
        if training.launcher == "torchrun":
            with tempfile.TemporaryDirectory(prefix="rs-train-job-") as tmp:
                path = Path(tmp) / "job.json"
                path.write_text(job.to_json())
                client = dg.PipesSubprocessClient()
                command = local_command(training.nproc_per_node, str(path))
                return pipes_result(client.run(context=context, command=command))
        if training.launcher == "k8s":
            from dagster_k8s import PipesK8sClient

            invocation = PipesK8sClient().run(
                context=context,
                namespace=training.namespace,
                base_pod_spec=training_pod_spec(training, job),
            )
            return pipes_result(invocation)
        raise ValueError(
            f"training.launcher {training.launcher!r} runs in process: call the stage directly"
        )


def stage_job(
    kind: str, cfg: PipelineConfig, context: dg.AssetExecutionContext, artifacts, lineage=None
) -> TrainJob:
    """The job of one stage partition: the whole config, the store and lineage it writes."""
    return TrainJob(
        kind=kind,
        config=cfg.model_dump(mode="json"),
        partition_key=context.partition_key,
        run_id=context.run_id,
        store_root=artifacts.root,
        storage_options=dict(artifacts.storage_options),
        lineage_db=lineage.path if lineage is not None else "",
    )
