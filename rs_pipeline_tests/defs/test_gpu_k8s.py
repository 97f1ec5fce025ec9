"""GPU assets share one declaration, and dagster-k8s turns it into a pod on a GPU node."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    USER_DEFINED_K8S_CONFIG_KEY,
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_k8s.launcher import K8sRunLauncher
from kubernetes.client import ApiClient, V1Job, V1Toleration

from rs_pipeline.definitions import ASSETS
from rs_pipeline.defs.gpu import EXECUTOR_ENV, GPU_OP_TAGS, GPU_POOL, step_executor

# Assets that must run on a GPU node; extend when a new model stage lands (e.g. clip_checkpoints).
EXPECTED_GPU_ASSETS = frozenset({"score_model", "pair_scores", "clip_checkpoints"})

PROD_YAML = Path(__file__).resolve().parents[2] / "infra" / "dagster.prod.yaml"
ENV_READ_BY_LAUNCHER = ("DAGSTER_K8S_NAMESPACE", "DAGSTER_K8S_SERVICE_ACCOUNT",
                        "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
                        "DAGSTER_K8S_PG_PASSWORD_SECRET")  # fmt: skip
# Launcher settings that K8sContainerContext.create_for_run copies onto every run and step pod.
LAUNCHER_TO_CONTEXT = ("image_pull_policy", "image_pull_secrets", "service_account_name",
                       "env_config_maps", "env_secrets", "env_vars", "volume_mounts", "volumes",
                       "labels", "resources", "scheduler_name", "security_context")  # fmt: skip
GPU_K8S_CONFIG = GPU_OP_TAGS[USER_DEFINED_K8S_CONFIG_KEY]
NODE_SELECTOR = GPU_K8S_CONFIG["pod_spec_config"]["node_selector"]
TOLERATIONS = GPU_K8S_CONFIG["pod_spec_config"]["tolerations"]


def _op_assets() -> dict[str, dg.AssetsDefinition]:
    return {
        a.key.to_user_string(): a
        for a in ASSETS
        if isinstance(a, dg.AssetsDefinition) and a.is_executable
    }


def _gpu_assets() -> dict[str, dg.AssetsDefinition]:
    return {name: a for name, a in _op_assets().items() if a.op.pool == GPU_POOL}


def _decoded(tags: dict[str, str]) -> dict:
    # Dagster stores non-string op tag values as JSON strings.
    return {k: json.loads(v) if k == USER_DEFINED_K8S_CONFIG_KEY else v for k, v in tags.items()}


def test_expected_gpu_assets_are_in_the_gpu_pool():
    missing = EXPECTED_GPU_ASSETS - set(_gpu_assets())
    assert not missing, f"{sorted(missing)} must declare pool=GPU_POOL and op_tags=GPU_OP_TAGS"


@pytest.mark.parametrize("name", sorted(_gpu_assets()))
def test_gpu_asset_carries_exactly_the_shared_k8s_tags(name):
    tags = _decoded(dict(_gpu_assets()[name].op.tags))
    assert {k: tags.get(k) for k in GPU_OP_TAGS} == GPU_OP_TAGS


def test_only_gpu_pool_assets_request_a_gpu():
    # A GPU request outside the pool would bypass the `gpu` concurrency limit.
    requesting = {
        name
        for name, a in _op_assets().items()
        if "nvidia.com/gpu" in a.op.tags.get(USER_DEFINED_K8S_CONFIG_KEY, "")
    }
    assert requesting == set(_gpu_assets())


def _step_job(op_tags: dict[str, str], launcher_context: K8sContainerContext) -> V1Job:
    """The Job `k8s_job_executor` builds for one step, merged as its `_get_container_context`."""
    step_config = get_user_defined_k8s_config(op_tags)
    context = launcher_context.merge(K8sContainerContext(run_k8s_config=step_config))
    return construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(job_image="registry.example/rs-pipeline:test"),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-test",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )


@pytest.mark.parametrize("name", sorted(_gpu_assets()))
def test_dagster_k8s_builds_a_gpu_pod_for_the_step(name):
    job = _step_job(dict(_gpu_assets()[name].op.tags), K8sContainerContext())
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.resources.requests["nvidia.com/gpu"] == "1"
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert pod.node_selector == NODE_SELECTOR
    assert pod.tolerations == [V1Toleration(**t) for t in TOLERATIONS]

    manifest = ApiClient().sanitize_for_serialization(job)  # what kubectl would receive
    pod_manifest = manifest["spec"]["template"]["spec"]
    assert pod_manifest["nodeSelector"] == NODE_SELECTOR
    assert pod_manifest["tolerations"] == TOLERATIONS
    assert pod_manifest["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def _prod_launcher_context(monkeypatch) -> K8sContainerContext:
    """The context K8sRunLauncher (infra/dagster.prod.yaml) gives every run and step pod."""
    launcher = yaml.safe_load(PROD_YAML.read_text())["run_launcher"]
    assert launcher["class"] == "K8sRunLauncher"
    for name in ENV_READ_BY_LAUNCHER:
        monkeypatch.setenv(name, "x")
    done = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert done.success, done.errors
    cfg = done.value
    for name in cfg.get("env_vars", []):  # forwarded from the daemon's environment
        monkeypatch.setenv(name.split("=")[0], "x")
    shared = {k: cfg[k] for k in LAUNCHER_TO_CONTEXT if cfg.get(k) is not None}
    run_k8s = UserDefinedDagsterK8sConfig.from_dict(cfg.get("run_k8s_config") or {})
    return K8sContainerContext(**shared, run_k8s_config=run_k8s)


def test_prod_launcher_settings_keep_gpu_steps_on_gpu_nodes(monkeypatch):
    # Run-launcher settings deep-merge into every step pod: they must not override the GPU
    # request or add a node selector that a GPU node cannot satisfy.
    launcher = _prod_launcher_context(monkeypatch)
    for name in sorted(_gpu_assets()):
        pod = _step_job(dict(_gpu_assets()[name].op.tags), launcher).spec.template.spec
        assert pod.containers[0].resources.requests["nvidia.com/gpu"] == "1", name
        assert pod.node_selector == NODE_SELECTOR, name
        assert pod.tolerations == [V1Toleration(**t) for t in TOLERATIONS], name


def test_cpu_asset_pod_has_no_gpu_request_or_gpu_placement():
    cpu = next(a for n, a in _op_assets().items() if n not in _gpu_assets())
    pod = _step_job(dict(cpu.op.tags), K8sContainerContext()).spec.template.spec
    resources = pod.containers[0].resources
    assert "nvidia.com/gpu" not in ((resources and resources.requests) or {})
    assert not pod.node_selector and not pod.tolerations


def test_step_executor_is_k8s_job_executor_only_when_selected(monkeypatch):
    from dagster_k8s import k8s_job_executor

    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert step_executor() is None  # Dagster's default executor locally
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    assert step_executor() is k8s_job_executor


def test_unknown_executor_choice_says_what_to_set(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    with pytest.raises(ValueError, match="set it to 'k8s'"):
        step_executor()
