"""A real S3 API on loopback for tests: moto's threaded HTTP server, one bucket, fake keys."""

from __future__ import annotations

import contextlib
import logging
import threading
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


# -- faults: a server that stops and comes back, and answers some requests with a 5xx ----------
class InjectedFaults:
    """Which requests the server answers with a 5xx instead of passing them to moto.

    `arm(every=k, count=n)` fails requests k, 2k, ... (n of them), counted from the call, so a
    test injects a fixed number of transient errors whatever the client's request pattern.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = self._every = self._left = 0
        self.injected: list[str] = []  # "METHOD /path -> status" of each injected error

    def arm(self, *, every: int, count: int) -> None:
        """Fail every `every`-th request from now on, `count` times; `count=0` disarms."""
        with self._lock:
            self._seen, self._every, self._left = 0, every, count

    def take(self, method: str, path: str) -> int | None:
        """The status to answer this request with, or None to serve it."""
        with self._lock:
            if self._left <= 0:
                return None
            self._seen += 1
            if self._seen % self._every:
                return None
            self._left -= 1
            status = (500, 503)[len(self.injected) % 2]
            self.injected.append(f"{method} {path} -> {status}")
            return status


_ERRORS = {500: ("500 Internal Server Error", "InternalError"),
           503: ("503 Service Unavailable", "ServiceUnavailable")}  # fmt: skip


def _faulty(app, faults: InjectedFaults):
    """`app` behind `faults`: an injected error reads the request body first, as S3 does."""

    def serve(environ, start_response):
        status = faults.take(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if status is None:
            return app(environ, start_response)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        line, code = _ERRORS[status]
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        start_response(
            line, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return serve


class _FaultyMotoServer:
    """moto's threaded server on a fixed port, behind `InjectedFaults`; stops and restarts.

    Unlike moto's own `stop`, stopping closes the listening socket, so a client sees a refused
    connection (a server that is down) rather than a connection that never answers.
    """

    def __init__(self, faults: InjectedFaults, port: int = 0) -> None:
        self.faults, self.port = faults, port
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = _faulty(DomainDispatcherApplication(create_backend_app), self.faults)
        self._server = make_server("127.0.0.1", self.port, app, threaded=True,
                                   request_handler=MotoRequestHandler)  # fmt: skip
        self.port = self._server.server_address[1]  # the same port on every restart
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None


@dataclass(frozen=True)
class FaultyS3:
    """A loopback S3 that a test can stop, restart (objects kept) and make answer 5xx."""

    s3: LoopbackS3
    faults: InjectedFaults
    _server: _FaultyMotoServer

    def stop(self) -> None:
        """Take the endpoint down: connections are refused until `start`."""
        self._server.stop()

    def start(self) -> None:
        """Bring it back on the same port; moto's backends are process-global, so every
        object written before the stop is still there."""
        self._server.start()
        _clear_s3fs_instances()  # connections pooled before the stop are dead


@contextlib.contextmanager
def faulty_s3(bucket: str = "rs-faults") -> Iterator[FaultyS3]:
    """`loopback_s3`, but the server can be stopped, restarted and told to inject 5xx."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    faults = InjectedFaults()
    server = _FaultyMotoServer(faults)
    server.start()
    s3 = LoopbackS3(f"http://127.0.0.1:{server.port}", bucket)
    try:
        s3.client().create_bucket(Bucket=bucket)
        _clear_s3fs_instances()
        yield FaultyS3(s3, faults, server)
    finally:
        _clear_s3fs_instances()
        server.stop()
