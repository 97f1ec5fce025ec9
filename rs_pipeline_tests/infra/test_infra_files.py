"""infra/ validated offline: YAML, Dagster's instance schema, the Helm chart's keys, the image."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from rs_pipeline.defs.gpu import EXECUTOR_ENV, step_executor

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
PROD_YAML = INFRA / "dagster.prod.yaml"
HELM_VALUES = INFRA / "helm" / "values.yaml"
DOCKERFILE = INFRA / "Dockerfile"

# Key paths of the `dagster/dagster` chart, read from the pydantic models its values.schema.json
# is generated from, in dagster-io/dagster (master, no published chart checked out here):
#   helm/dagster/schema/schema/charts/dagster/values.py                     @ 0f2d9d8ee175
#   .../dagster/subschema/run_launcher.py                                   @ 969d726524d9
#   .../dagster/subschema/daemon.py, webserver.py                           @ 007010702fbd
#   .../dagster_user_deployments/subschema/user_deployments.py              @ 007010702fbd
#   .../dagster/subschema/concurrency.py                                    @ 7dade7692d97
#   .../dagster/subschema/compute_log_manager.py                            @ 36f72b1733ae
#   .../dagster/subschema/postgresql.py                                     @ 3f2daa0de14f
#   .../dagster/subschema/global_.py                                        @ 53ff29f32a20
# Recheck against the chart version you deploy (`helm show values dagster/dagster --version X`).
CHART_KEYS = {
    (): {"dagsterWebserver", "dagster-user-deployments", "postgresql",
         "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
         "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler",
         "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry",
         "serviceAccount", "global", "retention", "concurrency", "additionalInstanceConfig"},
    ("global",): {"postgresqlSecretName", "dagsterHome", "serviceAccountName",
                  "celeryConfigSecretName", "dagsterInstanceConfigMap"},
    ("dagster-user-deployments",): {"enabled", "enableSubchart", "imagePullSecrets",
                                    "deployments"},
    ("runLauncher",): {"type", "config"},
    ("runLauncher", "config"): {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    ("runLauncher", "config", "k8sRunLauncher"): {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig"},
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"): {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig",
        "jobMetadata"},
    ("postgresql",): {"image", "enabled", "postgresqlHost", "postgresqlUsername",
                      "postgresqlPassword", "postgresqlDatabase", "postgresqlParams",
                      "postgresqlScheme", "service"},
    ("computeLogManager",): {"type", "config"},
    ("computeLogManager", "config"): {"azureBlobComputeLogManager", "gcsComputeLogManager",
                                      "s3ComputeLogManager", "customComputeLogManager"},
    ("computeLogManager", "config", "s3ComputeLogManager"): {
        "bucket", "localDir", "prefix", "useSsl", "verify", "verifyCertPath", "endpointUrl",
        "skipEmptyFiles", "uploadInterval", "uploadExtraArgs", "showUrlOnly", "region"},
    ("concurrency",): {"enabled", "pools", "runs"},
    ("concurrency", "pools"): {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    ("concurrency", "runs"): {"maxConcurrentRuns", "tagConcurrencyLimits"},
    ("dagsterDaemon",): {
        "schedulerName", "volumeMounts", "volumes", "enabled", "image", "runCoordinator",
        "heartbeatTolerance", "env", "envConfigMaps", "envSecrets", "deploymentLabels",
        "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
        "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe",
        "annotations", "runMonitoring", "runRetries", "sensors", "schedules"},
    ("dagsterDaemon", "runCoordinator"): {"enabled", "type", "config"},
    ("dagsterWebserver",): {
        "dbStatementTimeout", "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts",
        "volumes", "pathPrefix", "replicaCount", "image", "nameOverride", "service",
        "workspace", "env", "envConfigMaps", "envSecrets", "deploymentLabels", "labels",
        "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
        "resources", "readinessProbe", "livenessProbe", "startupProbe", "annotations",
        "enableReadOnly"},
}  # fmt: skip
USER_DEPLOYMENT_KEYS = {
    "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs",
    "includeConfigInLaunchedRuns", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName"}  # fmt: skip
# Environment the production instance reads, with stand-in values for validation.
PROD_ENV = {
    name: "5432" if name.endswith("PORT") else "stand-in"
    for name in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB",
                 "DAGSTER_PG_PORT", "RS_COMPUTE_LOGS_BUCKET", "RS_COMPUTE_LOGS_PREFIX",
                 "DAGSTER_K8S_NAMESPACE", "DAGSTER_K8S_SERVICE_ACCOUNT",
                 "DAGSTER_K8S_INSTANCE_CONFIG_MAP", "DAGSTER_K8S_PG_PASSWORD_SECRET")
}  # fmt: skip


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; Helm and Dagster would too."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        dupes = sorted({str(k) for k in keys if keys.count(k) > 1})
        if dupes:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {dupes}",
                                                    node.start_mark)  # fmt: skip
        return super().construct_mapping(node, deep=deep)


def _load(path: Path):
    return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)


def _at(data: dict, path: tuple[str, ...]):
    for key in path:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data


@pytest.mark.parametrize(
    "path", sorted(INFRA.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(REPO))
)
def test_infra_yaml_is_well_formed_without_duplicate_keys(path):
    assert isinstance(_load(path), dict)


def test_prod_instance_yaml_validates_against_dagsters_instance_schema(tmp_path):
    (tmp_path / "dagster.yaml").write_text(PROD_YAML.read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0


@pytest.mark.parametrize("section", ["run_launcher", "compute_logs", "run_coordinator"])
def test_prod_instance_classes_accept_their_config(section, monkeypatch):
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    entry = _load(PROD_YAML)[section]
    cls = getattr(importlib.import_module(entry["module"]), entry["class"])
    done = process_config(cls.config_type(), entry.get("config", {}))
    assert done.success, f"{section}: {done.errors}"


def test_prod_instance_reads_every_credential_and_location_from_env():
    db = _load(PROD_YAML)["storage"]["postgres"]["postgres_db"]
    for field in ("username", "password", "hostname", "db_name", "port"):
        assert set(db[field]) == {"env"}, f"postgres_db.{field} must come from the environment"
    assert set(_load(PROD_YAML)["compute_logs"]["config"]["bucket"]) == {"env"}


@pytest.mark.parametrize("path", [p for p in CHART_KEYS if p], ids=".".join)
def test_helm_values_use_only_chart_keys(path):
    section = _at(_load(HELM_VALUES), path)
    assert isinstance(section, dict)
    unknown = set(section) - CHART_KEYS[path]
    assert not unknown, f"{'.'.join(path)}: {sorted(unknown)} are not keys of the dagster chart"


def test_helm_values_top_level_keys_are_chart_keys():
    assert set(_load(HELM_VALUES)) <= CHART_KEYS[()]


def test_helm_user_deployment_serves_the_code_location_from_the_image():
    (deployment,) = _load(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    assert set(deployment) <= USER_DEPLOYMENT_KEYS
    assert deployment["codeServerArgs"] == ["-m", "rs_pipeline.definitions"]
    assert "RS_PIPELINE_CONFIG" in deployment["env"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]


def test_helm_deployment_selects_the_k8s_step_executor(monkeypatch):
    from dagster_k8s import k8s_job_executor

    (deployment,) = _load(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    monkeypatch.setenv(EXECUTOR_ENV, deployment["env"][EXECUTOR_ENV])
    assert step_executor() is k8s_job_executor


def test_helm_run_launcher_leaves_gpu_placement_to_the_op_tags():
    values = _load(HELM_VALUES)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    run_k8s = values["runLauncher"]["config"]["k8sRunLauncher"].get("runK8sConfig", {})
    # runK8sConfig is merged into every step pod: a node selector here would fight gpu.py's.
    assert "nodeSelector" not in run_k8s.get("podSpecConfig", {})
    for component in ("dagsterDaemon", "dagsterWebserver"):
        assert not values[component].get("tolerations"), f"{component} must stay off GPU nodes"


def test_helm_postgres_password_comes_from_a_secret():
    values = _load(HELM_VALUES)
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]  # the operator-created secret
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_helm_and_prod_instance_agree_on_queue_pools_and_monitoring():
    values, prod = _load(HELM_VALUES), _load(PROD_YAML)
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert (
        values["concurrency"]["pools"]["defaultLimit"]
        == prod["concurrency"]["pools"]["default_limit"]
    )
    assert (
        values["concurrency"]["runs"]["maxConcurrentRuns"]
        == prod["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == prod["run_coordinator"]["class"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert (
        monitoring["freeSlotsAfterRunEndSeconds"]
        == prod["run_monitoring"]["free_slots_after_run_end_seconds"]
    )


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", dockerfile)  # line continuations
    lines = [ln.strip() for ln in joined.splitlines()]
    return [tuple(ln.split(None, 1)) for ln in lines if ln and not ln.startswith("#")]


def test_dockerfile_builds_on_cuda_runtime_with_python_311_and_the_package():
    steps = _instructions(DOCKERFILE.read_text())
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) == 1 and re.match(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-", froms[0])
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "python3.11 -m venv" in runs and re.search(r"pip install \.(\s|$)", runs)
    assert any(op == "COPY" and "pyproject.toml" in arg for op, arg in steps)


def test_dockerfile_runs_the_code_server_as_a_non_root_user():
    steps = _instructions(DOCKERFILE.read_text())
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in {"0", "root"}
    cmd = [arg for op, arg in steps if op in {"CMD", "ENTRYPOINT"}][-1]
    assert '"code-server", "start"' in cmd and '"rs_pipeline.definitions"' in cmd
