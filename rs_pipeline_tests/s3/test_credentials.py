"""Credentials come only from the environment: config rejects them, resources bind EnvVars."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from rs_pipeline.core.config import ConfigError, config_from_dict
from rs_pipeline.defs.resources import ArtifactStoreResource, build_resources
from rs_pipeline_tests.factories import write_config
from rs_pipeline_tests.s3.server import FAKE_KEY_ID, FAKE_SECRET, LoopbackS3


@pytest.mark.parametrize(
    "options",
    [
        {"key": "AKIA..."},
        {"secret": "x"},
        {"token": "x"},
        {"password": "x"},
        {"aws_secret_access_key": "x"},
        {"client_kwargs": {"aws_access_key_id": "x"}},
        {"config_kwargs": {"nested": {"aws_session_token": "x"}}},
    ],
)
def test_storage_options_holding_credentials_are_rejected_pointing_at_the_env(options):
    data = {"storage": {"root": "s3://bucket/prefix", "storage_options": options}}
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY") as err:
        config_from_dict(data)
    assert "storage.storage_options" in str(err.value)
    assert "'x'" not in str(err.value) and "AKIA..." not in str(err.value)  # value not echoed


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "imagefolder", "path": "s3://b/imgs", "storage_options": {"secret": "x"}},
        {"kind": "manifest", "path": "s3://b/m.csv", "storage_options": {"password": "x"}},
    ],
)
def test_source_storage_options_holding_credentials_are_rejected(source):
    with pytest.raises(ConfigError, match="must not hold credentials"):
        config_from_dict({"sources": [source]})


def test_benchmark_storage_options_holding_credentials_are_rejected():
    bench = {"name": "b", "kind": "classification", "path": "s3://b/x", "storage_options":
             {"client_kwargs": {"aws_secret_access_key": "x"}}}  # fmt: skip
    with pytest.raises(ConfigError, match="must not hold credentials"):
        config_from_dict({"evaluation": {"benchmarks": [bench]}})


def test_non_secret_storage_options_are_kept():
    options = {
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu"},
        "use_ssl": False,
        "s3_additional_kwargs": {"ServerSideEncryption": "AES256"},
    }
    cfg = config_from_dict({"storage": {"root": "s3://b/p", "storage_options": options}})
    assert cfg.storage.storage_options == options


def _artifacts(config: str) -> ArtifactStoreResource:
    return build_resources(config)["artifacts"]


def test_s3_keys_are_bound_as_env_vars_never_as_values(tmp_path, s3: LoopbackS3):
    config = write_config(tmp_path, storage={"root": f"s3://{s3.bucket}/p",
                          "lineage_db": str(tmp_path / "l.duckdb")})  # fmt: skip
    res = _artifacts(config)
    assert isinstance(res.aws_secret_access_key, dg.EnvVar)
    assert res.aws_secret_access_key.env_var_name == "AWS_SECRET_ACCESS_KEY"
    assert res.aws_access_key_id.env_var_name == "AWS_ACCESS_KEY_ID"
    assert res.aws_session_token is None  # unset in the environment: left unbound
    store = res.process_config_and_initialize().store()  # resolved only when the run starts
    assert store.storage_options["secret"] == FAKE_SECRET
    assert store.storage_options["key"] == FAKE_KEY_ID
    assert FAKE_SECRET not in repr(store) and FAKE_SECRET not in repr(res)


def test_local_roots_bind_no_credentials(tmp_path, s3: LoopbackS3):
    res = _artifacts(write_config(tmp_path))  # AWS keys are set, but the root is a folder
    assert res.aws_access_key_id is None and res.aws_secret_access_key is None


def test_without_keys_in_the_env_nothing_is_bound_and_botocore_chain_applies(tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    config = write_config(tmp_path, storage={"root": "s3://b/p",
                          "lineage_db": str(tmp_path / "l.duckdb")})  # fmt: skip
    res = _artifacts(config)
    assert (res.aws_access_key_id, res.aws_secret_access_key) == (None, None)


@dg.asset
def _probe(artifacts: ArtifactStoreResource) -> None:
    artifacts.store()


def _job_snapshot_text(resource: ArtifactStoreResource) -> str:
    with dg.instance_for_test() as instance:
        result = dg.materialize([_probe], resources={"artifacts": resource}, instance=instance)
        run = instance.get_run_by_id(result.run_id)
        return serialize_value(instance.get_job_snapshot(run.job_snapshot_id))


def test_dagster_shows_the_env_var_name_where_a_literal_secret_would_leak(s3: LoopbackS3):
    # The scan the end-to-end test relies on does find a secret given as a literal value.
    bound = _job_snapshot_text(ArtifactStoreResource(
        root=f"s3://{s3.bucket}/probe", aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    ))  # fmt: skip
    literal = _job_snapshot_text(
        ArtifactStoreResource(root=f"s3://{s3.bucket}/probe", aws_secret_access_key=FAKE_SECRET)
    )
    assert FAKE_SECRET not in bound and "AWS_SECRET_ACCESS_KEY" in bound
    assert FAKE_SECRET in literal
