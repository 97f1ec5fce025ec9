"""A real S3 API on loopback for tests: moto's threaded HTTP server, one bucket, fake keys."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

# Distinctive so a leak anywhere (logs, Dagster events, artifacts) is found by plain search.
FAKE_KEY_ID = "AKIARSPIPELINETEST01"
FAKE_SECRET = "rs-pipeline-FAKE-secret-5f0c2d9e7b41a3"
REGION = "us-east-1"


@dataclass(frozen=True)
class LoopbackS3:
    """An S3-compatible endpoint on 127.0.0.1 and the bucket made for the tests."""

    endpoint: str
    bucket: str

    def client(self):
        """A boto3 client that checks the bucket independently of the pipeline's s3fs."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY_ID,
            aws_secret_access_key=FAKE_SECRET,
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`, sorted."""
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        """One object's bytes."""
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def set_env(self, monkeypatch: pytest.MonkeyPatch, *, endpoint_in_env: bool) -> None:
        """Credentials (and optionally the endpoint) only in the environment, isolated from
        any real AWS configuration on the machine."""
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws/config")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws/credentials")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        if endpoint_in_env:
            monkeypatch.setenv("AWS_ENDPOINT_URL", self.endpoint)


def _clear_s3fs_instances() -> None:
    # fsspec caches filesystems by their arguments; one made for another server (or other
    # credentials) must not be reused.
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@contextlib.contextmanager
def loopback_s3(bucket: str = "rs-artifacts") -> Iterator[LoopbackS3]:
    """Start moto's S3 server on a free loopback port with `bucket`; stop it afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = LoopbackS3(f"http://{host}:{port}", bucket)
    try:
        s3.client().create_bucket(Bucket=bucket)
        _clear_s3fs_instances()
        yield s3
    finally:
        _clear_s3fs_instances()
        server.stop()
