"""The repository's dagster.yaml is the local default: SQLite, queued runs, pools, monitoring."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.runs import SqliteRunStorage

LOCAL_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


@pytest.fixture
def local_instance(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(LOCAL_YAML, home / "dagster.yaml")  # what `make dev` does
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()


def test_local_instance_stores_runs_in_sqlite_under_dagster_home(local_instance, tmp_path):
    assert isinstance(local_instance.run_storage, SqliteRunStorage)
    assert (tmp_path / "dagster_home" / "history" / "runs.db").is_file()


def test_local_instance_queues_runs_and_limits_pools(local_instance):
    assert isinstance(local_instance.run_coordinator, QueuedRunCoordinator)
    concurrency = local_instance.get_concurrency_config()
    assert concurrency.run_queue_config.max_concurrent_runs >= 1
    assert concurrency.pool_config.default_pool_limit == 1  # the `gpu` pool without a set limit


def test_local_instance_frees_pool_slots_and_retries_runs(local_instance):
    assert local_instance.run_monitoring_enabled
    assert local_instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    assert local_instance.run_retries_enabled and local_instance.run_retries_max_retries >= 1
