"""One loopback S3 server per test module; each test writes under its own prefix."""

from __future__ import annotations

import pytest

from rs_pipeline_tests.s3.server import LoopbackS3, loopback_s3


@pytest.fixture(scope="module")
def s3_server():
    with loopback_s3() as s3:
        yield s3


@pytest.fixture
def s3(s3_server: LoopbackS3, monkeypatch: pytest.MonkeyPatch) -> LoopbackS3:
    """The server, with the fake credentials in the environment (the endpoint is not)."""
    s3_server.set_env(monkeypatch, endpoint_in_env=False)
    return s3_server
