"""The production instance settings (infra/dagster.prod.yaml) record real runs in PostgreSQL.

A real PostgreSQL server runs on loopback and S3 is moto's server; only the Kubernetes run
launcher is swapped for the local one, since there is no cluster here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import dagster as dg
import psycopg2
import pytest
import yaml

from rs_pipeline.definitions import BATCH_ASSETS
from rs_pipeline.launch import materialize_batch
from rs_pipeline_tests.deploy.postgres_server import INSTALL_HINT, find_pg_bin, postgres_server
from rs_pipeline_tests.factories import write_config

PROD_YAML = Path(__file__).resolve().parents[2] / "infra" / "dagster.prod.yaml"
LOCAL_LAUNCHER = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}
BUCKET, PREFIX, BATCH = "rs-compute-logs", "dagster-logs", "2026-11-30"
BATCH_KEYS = {a.key.to_user_string() for a in BATCH_ASSETS}


@pytest.fixture(scope="module")
def pg():
    pg_bin = find_pg_bin()
    if pg_bin is None:
        message = f"PostgreSQL binaries (initdb, pg_ctl) not found: {INSTALL_HINT}"
        if os.environ.get("RS_PIPELINE_REQUIRE_POSTGRES"):  # set by .ci/run: CI never skips
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server(pg_bin) as server:
        yield server


@pytest.fixture(scope="module")
def env():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def s3_endpoint(env):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": endpoint}.items():  # fmt: skip
        env.setenv(key, value)  # AWS_ENDPOINT_URL points every boto3 client at moto
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def prod_instance(tmp_path_factory, pg, s3_endpoint, env):
    """A DagsterInstance from dagster.prod.yaml, its env pointing at the test servers."""
    for key, value in {"DAGSTER_PG_USERNAME": pg.user, "DAGSTER_PG_PASSWORD": pg.password,
                       "DAGSTER_PG_HOST": pg.host, "DAGSTER_PG_PORT": str(pg.port),
                       "DAGSTER_PG_DB": pg.db_name, "RS_COMPUTE_LOGS_BUCKET": BUCKET,
                       "RS_COMPUTE_LOGS_PREFIX": PREFIX}.items():  # fmt: skip
        env.setenv(key, value)
    config = yaml.safe_load(PROD_YAML.read_text())
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    config["run_launcher"] = LOCAL_LAUNCHER
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, prod_instance):
    """One real materialization of the tiny preset's batch assets on the prod instance."""
    config = write_config(tmp_path_factory.mktemp("tiny"))
    return materialize_batch(config, BATCH, instance=prod_instance)


def _query(pg, sql: str, *args) -> list[tuple]:
    conn = psycopg2.connect(pg.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_prod_instance_uses_postgres_storage_and_s3_compute_logs(prod_instance):
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(prod_instance.run_storage, PostgresRunStorage)
    assert isinstance(prod_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(prod_instance.compute_log_manager, S3ComputeLogManager)
    assert prod_instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


def test_batch_materialization_is_recorded_in_postgres(pg, prod_instance, batch_run):
    assert batch_run.success

    runs = _query(pg, "SELECT run_id, status FROM runs")
    assert [status for _, status in runs] == ["SUCCESS"]
    rows = _query(pg, "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = %s",
                  "ASSET_MATERIALIZATION")  # fmt: skip
    assert {(dg.AssetKey(json.loads(k)).to_user_string(), p) for k, p in rows} == {
        (key, BATCH) for key in BATCH_KEYS
    }
    assert _query(pg, "SELECT partition FROM dynamic_partitions") == [(BATCH,)]

    # The same facts through Dagster's API, from a fresh connection to the same database.
    (run,) = prod_instance.get_runs()
    assert run.run_id == runs[0][0] and run.status == dg.DagsterRunStatus.SUCCESS
    for key in BATCH_KEYS:
        event = prod_instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None and event.run_id == run.run_id
        assert event.asset_materialization.partition == BATCH


def test_run_compute_logs_land_in_the_s3_bucket(prod_instance, batch_run):
    assert batch_run.success
    (run,) = prod_instance.get_runs()
    run_prefix = f"{PREFIX}/storage/{run.run_id}/compute_logs/"
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=run_prefix)
    assert listed.get("KeyCount", 0) > 0, f"no compute log reached s3://{BUCKET}/{run_prefix}"
