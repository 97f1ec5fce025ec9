"""A live scorer-service stub on loopback: the `/v1/rewards` and `/v1/score` wire formats."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image


@dataclass
class StubService:
    """What the stub answers; `requests` records every request it got (path, headers, body)."""

    url: str = ""
    rewards: tuple[float, float] = (6.0, 1.0)
    fail_first: int = 0  # answer 500 this many times, then succeed
    status: int | None = None  # always answer this status with `detail`
    detail: str = ""
    sleep_s: float = 0.0  # before answering: past the client's timeout
    token: str | None = None  # when set, requests need `Authorization: Bearer <token>`
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *, path: str, headers: dict[str, str], body: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            failing = self.fail_first > 0
            self.fail_first -= failing
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"detail": "missing or wrong bearer token"}
        if failing:
            return 500, {"detail": "scorer warming up"}
        if self.status is not None:
            return self.status, {"detail": self.detail}
        if path == "/v1/rewards":
            s1, s2 = self.rewards
            scores = [
                {"completion_id": "completion1", "score": s1},
                {"completion_id": "completion2", "score": s2},
            ]
            return 200, {"model": body["model"], "scores": scores}
        if path == "/v1/score":
            return 200, {"model": "stub-v1", "scores": [float(len(t)) for t in body["texts"]]}
        return 404, {"detail": f"no route {path}"}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, reply = self.server.stub.answer(
            path=self.path, headers=headers, body=json.loads(raw)
        )
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping past a timeout never blocks teardown

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on a sleeping handler: expected in timeout tests


@pytest.fixture
def stub() -> Iterator[StubService]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stub = StubService(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield server.stub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_url() -> str:
    """An address where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def tile() -> Image.Image:
    return Image.new("RGB", (4, 4), (10, 200, 30))
