"""DuckDB over the artifact root's Parquet tables, for a local root and an s3:// root alike."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.parquet_sql import parquet_url, query_parquet
from rs_pipeline_tests.s3.server import loopback_s3

SCORES = "pair_scores/version=*/batch=*/scores.parquet"


@pytest.fixture(scope="module")
def s3_server():
    with loopback_s3() as s3:
        yield s3


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    s3 = request.getfixturevalue("s3_server")
    s3.set_env(monkeypatch, endpoint_in_env=True)  # the standard AWS_ENDPOINT_URL
    return ArtifactStore(f"s3://{s3.bucket}/{uuid.uuid4().hex}")


def _write_scores(store: ArtifactStore) -> None:
    for version, batch, n in [("a", "b1", 3), ("a", "b2", 2), ("z", "b1", 4)]:
        table = pa.table({"scorer_version": [version] * n, "batch": [batch] * n,
                          "score": [float(i) for i in range(n)]})  # fmt: skip
        store.write_table(table, f"pair_scores/version={version}/batch={batch}", "scores.parquet")


def test_query_reads_every_file_matching_the_glob(store):
    _write_scores(store)
    sql = "SELECT scorer_version, count(*) AS n FROM t GROUP BY 1 ORDER BY 1"
    got = query_parquet(store, SCORES, sql).to_pylist()
    assert got == [{"scorer_version": "a", "n": 5}, {"scorer_version": "z", "n": 4}]


def test_query_binds_parameters_and_narrows_by_glob(store):
    _write_scores(store)
    got = query_parquet(
        store, "pair_scores/version=a/batch=*/scores.parquet",
        "SELECT sum(score) AS s FROM scores WHERE batch = ?", ["b1"], name="scores",
    )  # fmt: skip
    assert got.column("s").to_pylist() == [0.0 + 1.0 + 2.0]


def test_hive_partitioning_exposes_folder_keys_as_columns(store):
    _write_scores(store)
    sql = "SELECT DISTINCT version FROM t ORDER BY 1"
    got = query_parquet(store, SCORES, sql, hive_partitioning=True)
    assert got.column("version").to_pylist() == ["a", "z"]


def test_query_sees_files_another_writer_added_after_an_earlier_listing(store):
    _write_scores(store)
    query_parquet(store, SCORES, "SELECT 1")  # lists (and, remotely, caches) the folders
    other = ArtifactStore(store.root, {"skip_instance_cache": True})  # another process, say
    other.write_table(pa.table({"scorer_version": ["a"], "batch": ["b9"], "score": [1.0]}),
                      "pair_scores/version=a/batch=b9", "scores.parquet")  # fmt: skip
    assert query_parquet(store, SCORES, "SELECT count(*) AS n FROM t").column("n")[0].as_py() == 10


def test_no_matching_file_fails_naming_the_url_and_the_fix(store):
    with pytest.raises(FileNotFoundError, match=r"pair_scores/.*materialize"):
        query_parquet(store, SCORES, "SELECT count(*) FROM t")


def test_remote_roots_are_read_by_url_and_local_roots_by_path(store):
    url = parquet_url(store, "x/y.parquet")
    if store.is_local:
        assert url.startswith("/") and url.endswith("/artifacts/x/y.parquet")
    else:
        assert url == store.url("x/y.parquet") and url.startswith("s3://")
