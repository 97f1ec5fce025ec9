"""The artifact store on s3:// against a loopback S3 server, wherever the endpoint is set."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline_tests.s3.server import LoopbackS3

TABLE = pa.table({"sample_id": ["a", "b"], "score": [0.5, 1.5]})


def _prefix() -> str:
    return f"store-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("where", ["storage_options", "client_kwargs", "AWS_ENDPOINT_URL"])
def test_tables_round_trip_through_the_bucket_wherever_the_endpoint_is_set(
    s3: LoopbackS3, monkeypatch, where
):
    options = {
        "storage_options": {"endpoint_url": s3.endpoint},
        "client_kwargs": {"client_kwargs": {"endpoint_url": s3.endpoint}},
        "AWS_ENDPOINT_URL": {},
    }[where]
    if where == "AWS_ENDPOINT_URL":
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    prefix = _prefix()
    store = ArtifactStore(f"s3://{s3.bucket}/{prefix}/", options)
    url = store.write_table(TABLE, "rs_images/batch=b1", "samples.parquet")
    assert url == f"s3://{s3.bucket}/{prefix}/rs_images/batch=b1/samples.parquet"
    assert s3.keys(prefix) == [f"{prefix}/rs_images/batch=b1/samples.parquet"]  # no temp files
    assert store.read_table("rs_images/batch=b1", "samples.parquet").equals(TABLE)
    assert not store.is_local


def test_streamed_table_is_published_on_close_and_nothing_on_abort(s3: LoopbackS3):
    prefix = _prefix()
    store = ArtifactStore(f"s3://{s3.bucket}/{prefix}", {"endpoint_url": s3.endpoint})
    writer = TableWriter(store, TABLE.schema, "pair_scores/version=v/batch=b1", "scores.parquet",
                         chunk=1)  # fmt: skip
    for row in TABLE.to_pylist():
        writer.write(row)
    writer.close()
    aborted = TableWriter(store, TABLE.schema, "pair_scores/version=v/batch=b2", "x.parquet")
    aborted.write(TABLE.to_pylist()[0])
    aborted.abort()
    assert s3.keys(prefix) == [f"{prefix}/pair_scores/version=v/batch=b1/scores.parquet"]
    assert store.read_table("pair_scores/version=v/batch=b1", "scores.parquet").equals(TABLE)


def test_missing_table_fails_naming_its_s3_url_and_the_fix(s3: LoopbackS3):
    store = ArtifactStore(f"s3://{s3.bucket}/{_prefix()}", {"endpoint_url": s3.endpoint})
    with pytest.raises(FileNotFoundError, match=r"s3://.*/rs_images/.*materialize"):
        store.read_table("rs_images/batch=b1", "samples.parquet")


def test_store_repr_never_shows_credentials_in_its_storage_options(s3: LoopbackS3):
    store = ArtifactStore(f"s3://{s3.bucket}/x", {"endpoint_url": s3.endpoint, "secret": "s3kr1t"})
    assert "s3kr1t" not in repr(store)
