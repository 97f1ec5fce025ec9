"""Endpoint captioner and judge against a real, scripted chat-completions server on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.captions.endpoint import (
    ChatClient,
    EndpointCaptioner,
    EndpointError,
    EndpointJudge,
    parse_ranking,
)
from rs_pipeline.core.captions.registry import chat_client
from rs_pipeline.core.config import EndpointSettings, config_from_dict
from rs_pipeline.core.prompts import CAPTION_PROMPT

PAPER_PROMPT = "Provide a factual description highlighting important details in this picture."

# Scripted replies: ("ok", text) | ("sleep", seconds) | ("status", code, body) | ("raw", text)
# | ("json", object). A script runs in request order; a responder decides from the request.
Action = tuple


def chat_reply(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


class FakeChatServer:
    """A chat-completions server that records requests and answers as scripted."""

    def __init__(self) -> None:
        self.script: list[Action] = []
        self.responder: Callable[[dict], Action] | None = None
        self.on_request: Callable[[], None] | None = None
        self.received: list[tuple[dict[str, str], dict]] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.paths: list[str] = []

    def next_action(self, body: dict) -> Action:
        with self._lock:
            if self.on_request is not None:
                self.on_request()
            if self.script:
                return self.script.pop(0)
        return self.responder(body) if self.responder else ("ok", "a default caption")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.received.append((dict(self.headers), body))
                    server.paths.append(self.path)
                # The client may have timed out and hung up, as a test intended.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(server.next_action(body))

            def _answer(self, action: Action) -> None:
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    return self._send(200, json.dumps(chat_reply("too late")))
                if kind == "status":
                    return self._send(action[1], action[2])
                if kind == "raw":
                    return self._send(200, action[1], "text/html")
                if kind == "json":
                    return self._send(200, json.dumps(action[1]))
                return self._send(200, json.dumps(chat_reply(action[1])))

            def _send(self, code: int, text: str, ctype: str = "application/json") -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    srv = FakeChatServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


class Sleeps(list):
    """A no-op sleep that remembers what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def settings_for(url: str, **fields: Any) -> EndpointSettings:
    return EndpointSettings(base_url=url, model="test-vlm", **{"api_key_env": None, **fields})


def client_for(
    url: str, sleep: Callable[[float], None] | None = None, backoff_s: float = 0.5, **fields: Any
) -> ChatClient:
    sleep = Sleeps() if sleep is None else sleep
    return ChatClient(settings_for(url, **fields), backoff_s=backoff_s, sleep=sleep)


def solid(color: tuple[int, int, int], size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), color)


def sample(sample_id: str, color: tuple[int, int, int] = (10, 120, 30)) -> SampleView:
    return SampleView(sample_id=sample_id, image=solid(color))


def sent_image(body: dict) -> Image.Image:
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def sent_text(body: dict) -> str:
    part = body["messages"][0]["content"][1]
    assert part["type"] == "text"
    return part["text"]


def test_caption_request_carries_base64_image_and_prompt(server):
    server.script = [("ok", "  A green field with a road.  ")]
    captioner = EndpointCaptioner(client_for(server.base_url), prompt_version="p1")
    out = captioner.caption([sample("s1", (10, 120, 30))])
    assert CAPTION_PROMPT == PAPER_PROMPT  # the paper's wording, pinned
    assert out == [Candidate("s1", "vlm-endpoint:test-vlm@p1", "A green field with a road.")]
    ((headers, body),) = server.received
    assert server.paths == ["/v1/chat/completions"]
    assert body["model"] == "test-vlm" and body["max_tokens"] == 128
    assert body["messages"][0]["role"] == "user"
    assert sent_text(body) == PAPER_PROMPT
    image = sent_image(body)
    assert image.size == (16, 16) and image.getpixel((3, 3)) == (10, 120, 30)


def test_timeouts_and_5xx_are_retried_then_succeed(server):
    server.script = [("sleep", 0.6), ("status", 500, "boom"), ("status", 503, "busy"),
                     ("status", 429, "slow down"), ("ok", "finally")]  # fmt: skip
    sleeps = Sleeps()
    client = client_for(server.base_url, sleeps, timeout_s=0.2, max_retries=4, backoff_s=0.5)
    assert client.complete([client.image_message(solid((1, 2, 3)), "hi")]) == "finally"
    assert len(server.received) == 5
    assert len(sleeps) == 4  # one backoff between each pair of attempts
    caps = [0.5, 1.0, 2.0, 4.0]  # exponential, each jittered into [cap/2, cap]
    assert all(cap / 2 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


def test_persistent_failure_becomes_failed_row_while_others_survive(server):
    def responder(body: dict) -> Action:
        red = sent_image(body).getpixel((0, 0)) == (255, 0, 0)
        return ("status", 503, "overloaded") if red else ("ok", f"caption {sent_text(body)[:7]}")

    server.responder = responder
    captioner = EndpointCaptioner(client_for(server.base_url, max_retries=2), max_workers=4)
    samples = [sample("a"), sample("bad", (255, 0, 0)), sample("c"), sample("d")]
    out = captioner.caption(samples)
    assert [c.sample_id for c in out] == ["a", "bad", "c", "d"]  # input order survives threads
    assert [c.status for c in out] == ["ok", "failed", "ok", "ok"]
    failed = out[1]
    assert failed.text == "" and "503" in failed.error and "3 attempt" in failed.error
    assert "base_url" in failed.error and server.base_url in failed.error
    assert all(c.text == "caption Provide" for c in out if c.status == "ok")
    assert len(server.received) == 3 + 3  # three good requests, three tries of the bad one


def test_unreachable_server_error_says_what_to_check():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}/v1", max_retries=1, timeout_s=1.0)
    with pytest.raises(EndpointError, match="connection failed") as err:
        client.complete([{"role": "user", "content": "hi"}])
    assert err.value.attempts == 2 and err.value.status is None
    assert "server" in str(err.value) and f"127.0.0.1:{port}" in str(err.value)


def test_non_json_and_missing_fields_are_retried(server):
    server.script = [
        ("raw", "<html>502 gateway</html>"),
        ("json", {"id": "x"}),
        ("json", {"choices": []}),
        ("json", {"choices": [{"message": {"content": None}}]}),
        ("ok", "good"),
    ]
    client = client_for(server.base_url, max_retries=4)
    assert client.complete([{"role": "user", "content": "hi"}]) == "good"
    assert len(server.received) == 5

    server.script = [("raw", "not json")] * 2
    with pytest.raises(EndpointError, match="not JSON") as err:
        client_for(server.base_url, max_retries=1).complete([{"role": "user", "content": "x"}])
    assert err.value.attempts == 2


def test_client_error_4xx_is_not_retried(server):
    server.script = [("status", 400, '{"error": "model test-vlm does not exist"}')]
    client = client_for(server.base_url, max_retries=3)
    with pytest.raises(EndpointError) as err:
        client.complete([{"role": "user", "content": "hi"}])
    assert len(server.received) == 1
    assert err.value.status == 400 and err.value.attempts == 1
    assert "does not exist" in str(err.value) and "model name" in str(err.value)

    server.script = [("status", 404, "no such route")]
    out = EndpointCaptioner(client).caption([sample("s")])
    assert out[0].status == "failed" and "404" in out[0].error
    assert len(server.received) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limit_spaces_requests(server):
    clock = FakeClock()
    seen_at: list[float] = []
    server.on_request = lambda: seen_at.append(clock.now)
    config = settings_for(server.base_url, max_requests_per_s=2)
    client = ChatClient(config, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        client.complete([{"role": "user", "content": "hi"}])
    assert seen_at == [0.0, 0.5, 1.0]
    assert clock.sleeps == [0.5, 0.5]

    clock.now += 10.0  # idle time earns no burst: the next request simply goes now
    client.complete([{"role": "user", "content": "hi"}])
    assert seen_at[-1] == 11.0 and clock.sleeps == [0.5, 0.5]


def test_api_key_comes_from_environment_and_never_appears_in_repr_or_errors(server, monkeypatch):
    secret = "sk-test-SECRET-42"
    monkeypatch.setenv("RS_TEST_VLM_KEY", secret)
    config = settings_for(server.base_url, api_key_env="RS_TEST_VLM_KEY")
    client = ChatClient(config, sleep=Sleeps())
    client.complete([{"role": "user", "content": "hi"}])
    assert server.received[-1][0]["Authorization"] == f"Bearer {secret}"

    monkeypatch.setenv("RS_TEST_VLM_KEY", "sk-rotated")  # read at call time, not at build time
    client.complete([{"role": "user", "content": "hi"}])
    assert server.received[-1][0]["Authorization"] == "Bearer sk-rotated"
    monkeypatch.setenv("RS_TEST_VLM_KEY", secret)

    server.script = [("status", 401, f"bad key Bearer {secret}")]  # a server that echoes it
    with pytest.raises(EndpointError) as err:
        client.complete([{"role": "user", "content": "hi"}])
    server.script = [("status", 500, f"trace: {secret}")] * 4
    failed = EndpointCaptioner(client).caption([sample("s")])[0]
    shown = [repr(config), repr(client), str(err.value), failed.error, repr(failed)]
    assert all(secret not in text for text in shown)
    assert "RS_TEST_VLM_KEY" in str(err.value) and "***" in str(err.value)

    monkeypatch.delenv("RS_TEST_VLM_KEY")
    client.complete([{"role": "user", "content": "hi"}])
    assert "Authorization" not in server.received[-1][0]


def test_client_takes_the_config_section_as_loaded(server, monkeypatch):
    secret = "sk-from-env-7"
    monkeypatch.setenv("RS_TEST_JUDGE_KEY", secret)
    endpoint = {
        "base_url": server.base_url,
        "model": "judge-vlm",
        "api_key_env": "RS_TEST_JUDGE_KEY",
        "max_retries": 0,
    }
    settings = config_from_dict({"pairs": {"judge_endpoint": endpoint}}).pairs.judge_endpoint
    client = chat_client(settings)
    assert client.settings is settings  # the section itself: no second, hand-copied config
    server.script = [("status", 503, "busy")]
    with pytest.raises(EndpointError) as err:
        client.complete([{"role": "user", "content": "hi"}])
    assert err.value.attempts == 1  # max_retries: 0 from the YAML reached the client
    client.complete([{"role": "user", "content": "hi"}])
    headers, body = server.received[-1]
    assert body["model"] == "judge-vlm" and headers["Authorization"] == f"Bearer {secret}"
    assert secret not in repr(settings) and secret not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("2>1>3", (1, 0, 2)),
        ("2 > 1 > 3", (1, 0, 2)),
        ("[2, 1, 3]", (1, 0, 2)),
        ("Ranking: 2, 1, 3", (1, 0, 2)),
        ("Candidate 2 is best, then 1, then 3", (1, 0, 2)),
        ('{"ranking": [2, 1, 3]}', (1, 0, 2)),
        ('```json\n{"ranking": ["3", "1", "2"]}\n```', (2, 0, 1)),
        ("Having compared all 3 captions, my ranking is 2 > 1 > 3.", (1, 0, 2)),
        ("Candidate 3 > Candidate 1 > Candidate 2", (2, 0, 1)),
        ("Of the 3 options... Final answer: 3, 2, 1", (2, 1, 0)),
        ("2 > 7 > 2 > 0 > 1", (1, 0, 2)),  # out of range and repeats ignored
        ("3", (2, 0, 1)),  # omitted candidates follow in input order
        ("no idea", None),
        ("", None),
        ("9 > 8 > 0", None),
    ],
)
def test_parse_ranking_accepts_many_reply_shapes(reply, expected):
    assert parse_ranking(reply, 3) == expected


def three_candidates(sample_id: str = "s") -> list[Candidate]:
    texts = ["A dense residential area.", "A lake beside a forest.", "An airport with a runway."]
    return [Candidate(sample_id, f"c{i}", t) for i, t in enumerate(texts)]


def test_judge_returns_none_on_unusable_reply(server):
    judge = EndpointJudge(client_for(server.base_url, max_retries=1))
    server.script = [("ok", "I cannot judge these images, sorry.")]
    assert judge.rank(sample("s1"), three_candidates("s1")) is None
    server.script = [("status", 502, "bad gateway")] * 2
    assert judge.rank(sample("s2"), three_candidates("s2")) is None
    assert [sid for sid, _ in judge.failures] == ["s1", "s2"]
    assert "names no candidate" in judge.failures[0][1] and "cannot judge" in judge.failures[0][1]
    assert "502" in judge.failures[1][1]


def test_judge_ranking_from_server_reply(server):
    server.script = [("ok", "Candidate 3 is best, then 1.")]
    judge = EndpointJudge(client_for(server.base_url), prompt_version="p2")
    assert judge.id == "vlm-judge:test-vlm@p2"
    ranking = judge.rank(sample("s", (200, 200, 200)), three_candidates())
    assert ranking is not None and ranking.order == (2, 0, 1)
    assert "[1] not named" in ranking.reason and judge.failures == []
    ((_, body),) = server.received
    prompt = sent_text(body)
    for i, cand in enumerate(three_candidates(), 1):
        assert f"{i}. {cand.text}" in prompt
    assert "best" in prompt and "2 > 1 > 3" in prompt
    assert sent_image(body).getpixel((0, 0)) == (200, 200, 200)


def test_judge_ranks_failed_candidates_last_without_showing_them(server):
    server.script = [("ok", "2 > 1")]
    cands = three_candidates()
    cands[1] = Candidate("s", "c1", "", status="failed", error="HTTP 503")
    ranking = EndpointJudge(client_for(server.base_url)).rank(sample("s"), cands)
    assert ranking is not None and ranking.order == (2, 0, 1)
    assert "1. A dense residential area.\n2. An airport" in sent_text(server.received[0][1])
