"""The whole graph on the tiny preset with the artifact root on s3:// (moto's S3 on loopback).

One module-scoped run; each test checks one promise: the objects are in the bucket, DuckDB
reads them through fsspec and they reconcile with lineage, and the fake secret (set only in
the environment) appears in no log, console line, Dagster record or written file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from dagster._serdes import serialize_value

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig, load_config
from rs_pipeline.core.lineage import TABLES as LINEAGE_TABLES
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.parquet_sql import query_parquet
from rs_pipeline.defs.resources import build_resources
from rs_pipeline.launch import LaunchResult, run_all
from rs_pipeline_tests.factories import write_config
from rs_pipeline_tests.s3.server import FAKE_SECRET, LoopbackS3

pytestmark = pytest.mark.slow  # ~50 s on 2 cores: the whole graph, trimmed to two scorers

BATCH = "b1"
PREFIX = "e2e"
# The tiny preset with fewer scorers, seeds and steps: this module tests storage, not learning.
CHEAPER = {
    "scoring": {
        "scorers": [
            {"name": "clipscore", "backend": "clipscore", "warm_start_steps": 4},
            {"name": "random", "backend": "random"},
        ],
        "current": "clipscore",
    },
    "finetune": {"seeds": [0], "include_all": False, "steps": 2, "warmup_steps": 1},
}
# Parquet tables under the root -> (lineage table, column the counts are grouped by).
TABLES = {
    "rs_images/batch=*/samples.parquet": ("samples", "batch"),
    "caption_candidates/batch=*/captions.parquet": ("captions", "batch"),
    "preference_pairs/batch=*/pairs.parquet": ("pairs", "batch"),
    "pair_scores/version=*/batch=*/scores.parquet": ("scores", "scorer_version"),
    "curated_subsets/version=*/*.parquet": ("selections", "selection"),
    "clip_checkpoints/selection=*/eval.parquet": ("eval_results", "selection"),
}


@dataclass
class S3Run:
    """One run_all on s3:// and everything it left behind that a secret could hide in."""

    s3: LoopbackS3
    config: str
    home: Path  # config, lineage DB, work dir and Dagster's own storage
    result: LaunchResult
    logs: list[str]  # every log record at DEBUG, message and attributes
    console: str  # stdout + stderr, Python- and file-descriptor-level
    dagster: dict[str, str]  # run id -> its run, snapshots and event records, serialized

    @property
    def cfg(self) -> PipelineConfig:
        return load_config(self.config)

    def store(self) -> ArtifactStore:
        """A fresh reader of the root; credentials from the environment only."""
        return ArtifactStore(self.cfg.storage.root, dict(self.cfg.storage.storage_options))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()} {record.__dict__}")


@contextlib.contextmanager
def _captured() -> Iterator[tuple[list[str], io.StringIO, Path]]:
    """Every log record, and stdout/stderr both as Python streams and as fds 1 and 2."""
    handler, root = _Records(), logging.getLogger()
    level, text = root.level, io.StringIO()
    fd, fd_file = tempfile.mkstemp(suffix=".console")
    saved = [os.dup(1), os.dup(2)]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            yield handler.lines, text, Path(fd_file)
    finally:
        for target, old in zip((1, 2), saved, strict=True):
            os.dup2(old, target)
            os.close(old)
        os.close(fd)
        root.removeHandler(handler)
        root.setLevel(level)


def _dagster_records(instance: dg.DagsterInstance) -> dict[str, str]:
    """Each run's config, tags, job and plan snapshots and every event record, serialized."""
    out = {}
    for run in instance.get_runs():
        parts = [
            serialize_value(run),
            serialize_value(instance.get_job_snapshot(run.job_snapshot_id)),
        ]
        if run.execution_plan_snapshot_id:
            plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            parts.append(serialize_value(plan))
        parts += [serialize_value(e) for e in instance.all_logs(run.run_id)]
        out[run.run_id] = "\n".join(parts)
    return out


@pytest.fixture(scope="module")
def s3_run(s3_server: LoopbackS3, tmp_path_factory) -> Iterator[S3Run]:
    home = tmp_path_factory.mktemp("s3_e2e")
    storage = {
        "root": f"s3://{s3_server.bucket}/{PREFIX}",
        "lineage_db": str(home / "lineage.duckdb"),  # DuckDB needs a local file
        "work_dir": str(home / "work"),
        "storage_options": {"endpoint_url": s3_server.endpoint},  # not a secret
    }
    with pytest.MonkeyPatch.context() as mp:
        s3_server.set_env(mp, endpoint_in_env=False)
        mp.chdir(home)  # a URL mistaken for a local path would land here, and be found
        config = write_config(home, storage=storage, **CHEAPER)
        (home / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
            with _captured() as (logs, text, fd_file):
                result = run_all(config, [BATCH], instance=instance)
            records = _dagster_records(instance)
        console = text.getvalue() + fd_file.read_text(errors="replace")
        fd_file.unlink()
        yield S3Run(s3_server, config, home, result, logs, console, records)


def test_run_all_succeeds_with_the_artifact_root_on_s3(s3_run):
    assert s3_run.result.success, s3_run.result.describe()
    assert s3_run.result.artifact_root == f"s3://{s3_run.s3.bucket}/{PREFIX}"
    assert "evaluation_report" in s3_run.result.metadata  # the last stage ran


def test_every_stage_writes_its_objects_to_the_bucket_and_none_locally(s3_run):
    keys = s3_run.s3.keys(f"{PREFIX}/")
    stages = {k.split("/")[1] for k in keys}
    assert stages == {"rs_images", "caption_candidates", "preference_pairs", "score_model",
                      "pair_scores", "curated_subsets", "clip_checkpoints",
                      "evaluation_report"}  # fmt: skip
    assert f"{PREFIX}/rs_images/batch={BATCH}/images.parquet" in keys
    assert any(k.endswith("/model.safetensors") for k in keys)  # fine-tuned checkpoints
    assert f"{PREFIX}/evaluation_report/report.html" in keys
    assert not any(".tmp-" in k for k in keys)  # object stores need no temp-and-rename
    local = {p.name for p in s3_run.home.iterdir()}
    assert local <= {"config.yaml", "lineage.duckdb", "lineage.duckdb.lock", "work", "dagster"}


@pytest.mark.parametrize("pattern", list(TABLES))
def test_duckdb_reads_the_bucket_tables_and_counts_match_lineage(s3_run, pattern):
    table, column = TABLES[pattern]
    sql = f"SELECT {column} AS k, count(*) AS n FROM t GROUP BY 1 ORDER BY 1"
    from_s3 = query_parquet(s3_run.store(), pattern, sql).to_pylist()
    lineage = LineageStore(s3_run.cfg.storage.lineage_db)
    from_lineage = lineage.query(sql.replace("FROM t", f"FROM {table}")).to_pylist()
    assert from_s3 and all(r["n"] > 0 for r in from_s3)
    assert from_s3 == from_lineage


def test_the_secret_reached_the_store_only_through_the_environment(s3_run):
    # Without this, the absence checks below could pass on a run that never used the secret.
    artifacts = build_resources(s3_run.config)["artifacts"]
    assert artifacts.aws_secret_access_key.env_var_name == "AWS_SECRET_ACCESS_KEY"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == FAKE_SECRET
    assert FAKE_SECRET not in Path(s3_run.config).read_text()


def test_secret_is_in_no_log_record_or_console_output(s3_run):
    assert len(s3_run.logs) > 100 and "rs_images" in s3_run.console  # both were captured
    assert not [line for line in s3_run.logs if FAKE_SECRET in line]
    assert FAKE_SECRET not in s3_run.console


def test_secret_is_in_no_dagster_event_metadata_run_config_or_snapshot(s3_run):
    assert len(s3_run.dagster) >= 8  # every materialize of run_all, each with its records
    for run_id, text in s3_run.dagster.items():
        assert FAKE_SECRET not in text, f"run {run_id} exposes the secret"
    snapshots = "\n".join(s3_run.dagster.values())
    assert "AWS_SECRET_ACCESS_KEY" in snapshots  # the resource shows the variable's name


def _readable(name: str, data: bytes) -> str:
    """What a file holds, decoded where it is compressed (Parquet pages may be)."""
    if name.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))
        return f"{table.schema.metadata} {table.to_pylist()}"
    return data.decode("latin-1")


def test_secret_is_in_no_object_written_to_the_bucket(s3_run):
    keys = s3_run.s3.keys(f"{PREFIX}/")
    assert len(keys) > 20
    assert not [k for k in keys if FAKE_SECRET in _readable(k, s3_run.s3.read(k))]


def test_secret_is_in_no_local_file_or_lineage_row(s3_run):
    files = [p for p in s3_run.home.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".duckdb", ".db", ".yaml"}  # lineage, Dagster, config
    assert not [p for p in files if FAKE_SECRET in _readable(p.name, p.read_bytes())]
    lineage = LineageStore(s3_run.cfg.storage.lineage_db)
    for table in [*LINEAGE_TABLES, "writes"]:
        rows = lineage.query(f"SELECT * FROM {table}").to_pylist()
        assert FAKE_SECRET not in str(rows), f"lineage table {table} holds the secret"
