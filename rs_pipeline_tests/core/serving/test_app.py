"""The scorer service over real HTTP: a uvicorn server on loopback, httpx as a plain client."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from rs_pipeline.cli import main
from rs_pipeline.core.config import ServingConfig
from rs_pipeline.core.serving.app import create_app
from rs_pipeline.core.serving.batcher import Batcher, ScoreItem
from rs_pipeline.core.serving.server import start_in_thread

TOKEN_ENV = "RS_PIPELINE_TEST_SERVE_TOKEN"
SETTINGS = ServingConfig(
    max_batch=8,
    max_wait_ms=20,
    max_body_bytes=50_000,
    max_image_pixels=64 * 64,
    max_texts=4,
    token_env=None,
)


class StubScorer:
    """score = len(text) / 10; records each call's size and questions; "boom" raises."""

    backend = "stub"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.questions: list[list[str | None] | None] = []

    def score(self, images, texts, questions=None) -> list[float]:
        assert all(isinstance(im, Image.Image) and im.mode == "RGB" for im in images)
        self.batches.append(len(texts))
        self.questions.append(None if questions is None else list(questions))
        time.sleep(self.delay_s)  # a forward pass takes time: concurrent requests pile up
        if "boom" in texts:
            raise RuntimeError("the stub was told to fail")
        return [len(t) / 10 for t in texts]


def png_b64(size: int = 16) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (30, 120, 60)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


IMAGE = png_b64()


def reward_request(c1: str = "a river", c2: str = "a dense forest", **over) -> dict:
    body = {"model": "rs-reward", "problem_description": "What is shown?", "image_data": IMAGE}
    return {**body, "completion1": c1, "completion2": c2, **over}


def expected_rewards(c1: str, c2: str) -> dict:
    scores = [
        {"completion_id": "completion1", "score": len(c1) / 10},
        {"completion_id": "completion2", "score": len(c2) / 10},
    ]
    return {"model": "rs-reward", "scores": scores}


@pytest.fixture
def start():
    """start(scorer, **settings) -> an httpx client on a fresh server; all stopped after."""
    running, clients = [], []

    def _start(scorer, *, batching: bool = True, **settings) -> httpx.Client:
        cfg = SETTINGS.model_copy(update=settings)
        app = create_app(scorer, scorer_version="stub-000000", settings=cfg, batching=batching)
        server = start_in_thread(app, "127.0.0.1", 0)
        running.append(server)
        clients.append(httpx.Client(base_url=server.url, timeout=10))
        return clients[-1]

    yield _start
    for c in clients:
        c.close()
    for s in running:
        s.stop()


@pytest.fixture
def stub():
    return StubScorer()


@pytest.fixture
def client(start, stub) -> httpx.Client:
    return start(stub)


def assert_still_serving(client: httpx.Client) -> None:
    r = client.post("/v1/rewards", json=reward_request("ok", "fine"))
    assert r.status_code == 200, r.text
    assert r.json() == expected_rewards("ok", "fine")


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"], ids=["bare", "data-url"])
def test_rewards_scores_both_completions_against_the_problem(client, stub, prefix):
    r = client.post("/v1/rewards", json=reward_request(image_data=prefix + IMAGE))
    assert r.status_code == 200, r.text
    assert r.json() == expected_rewards("a river", "a dense forest")
    assert stub.questions == [["What is shown?", "What is shown?"]]


def test_score_returns_one_score_per_text_in_order_under_the_version(client, stub):
    texts = ["abc", "a", "abcdefgh", ""]
    r = client.post("/v1/score", json={"image_data": IMAGE, "texts": texts, "question": None})
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "stub-000000", "scores": [0.3, 0.1, 0.8, 0.0]}
    assert stub.questions == [None]  # no question: the scorer is not handed a list of Nones


def test_more_texts_than_max_texts_is_refused_with_a_message(client, stub):
    r = client.post("/v1/score", json={"image_data": IMAGE, "texts": ["t"] * 5})
    assert r.status_code == 413
    assert "serving.max_texts" in r.json()["detail"]
    assert stub.batches == []
    assert_still_serving(client)


def test_health_names_the_version(client):
    assert client.get("/healthz").json() == {"status": "ok", "scorer_version": "stub-000000"}


def test_token_is_required_when_its_env_var_is_set(start, stub, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    client = start(stub, token_env=TOKEN_ENV)
    assert client.post("/v1/rewards", json=reward_request()).status_code == 401
    wrong = client.post("/v1/rewards", json=reward_request(), headers=_auth("guess"))
    assert wrong.status_code == 401 and "bearer token" in wrong.json()["detail"]
    assert client.get("/metrics").status_code == 401
    assert client.get("/healthz").status_code == 200  # probes carry no secret
    good = client.post("/v1/rewards", json=reward_request(), headers=_auth("s3cret"))
    assert good.status_code == 200
    assert stub.batches == [2]  # the refused requests never reached the scorer


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_oversized_body_is_refused_by_its_content_length(client, stub):
    big = reward_request(completion1="x" * 60_000)
    r = client.post("/v1/rewards", json=big)
    assert r.status_code == 413 and "serving.max_body_bytes" in r.json()["detail"]
    assert stub.batches == []
    assert_still_serving(client)


def test_oversized_chunked_body_without_content_length_is_refused(client):
    def chunks():
        yield b'{"model": "m", "completion1": "'
        for _ in range(10):
            yield b"x" * 10_000

    r = client.post("/v1/rewards", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert_still_serving(client)


def test_a_small_chunked_body_is_served(client):
    import json

    body = json.dumps(reward_request()).encode()
    json_type = {"content-type": "application/json"}
    r = client.post("/v1/rewards", content=iter([body[:10], body[10:]]), headers=json_type)
    assert r.status_code == 200 and r.json() == expected_rewards("a river", "a dense forest")


def test_image_over_max_pixels_is_refused_before_decoding(client, stub):
    r = client.post("/v1/rewards", json=reward_request(image_data=png_b64(size=80)))
    assert r.status_code == 413 and "80x80" in r.json()["detail"]
    assert stub.batches == []
    assert_still_serving(client)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "problem_description": ',
        b"not json at all",
        b'{"model": "m", "image_data": "AAAA"}',
        b'{"model": 3, "problem_description": "q", "image_data": "A", "completion1": "a", '
        b'"completion2": ["b"]}',
        b"[1, 2, 3]",
    ],
    ids=["truncated", "not-json", "missing-fields", "wrong-types", "not-an-object"],
)
def test_malformed_requests_get_422_naming_the_problem(client, stub, body):
    r = client.post("/v1/rewards", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] and all("msg" in e and "loc" in e for e in r.json()["detail"])
    assert stub.batches == []
    assert_still_serving(client)


@pytest.mark.parametrize(
    "image_data",
    ["!!!not base64!!!", "QUJD=", "", base64.b64encode(b"plain text, no image").decode()],
    ids=["bad-alphabet", "bad-padding", "empty", "not-an-image"],
)
def test_bad_image_data_gets_400(client, stub, image_data):
    r = client.post("/v1/rewards", json=reward_request(image_data=image_data))
    assert r.status_code == 400 and r.json()["detail"]
    assert stub.batches == []
    assert_still_serving(client)


def test_concurrent_requests_share_scorer_calls_and_get_their_own_scores(start):
    stub = StubScorer(delay_s=0.03)
    client = start(stub)
    pairs = [("a" * i, "b" * (20 + i)) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(
            pool.map(lambda p: client.post("/v1/rewards", json=reward_request(*p)), pairs)
        )
    for (c1, c2), r in zip(pairs, replies, strict=True):
        assert r.status_code == 200, r.text
        assert r.json() == expected_rewards(c1, c2)
    assert max(stub.batches) > 2  # pairs of several requests went through one call
    assert max(stub.batches) <= SETTINGS.max_batch
    assert sum(stub.batches) == 32


def test_without_batching_each_call_holds_at_most_max_batch_pairs(start):
    stub = StubScorer(delay_s=0.01)
    client = start(stub, batching=False, max_batch=1)
    with ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(lambda i: client.post("/v1/rewards", json=reward_request()), range(4))
        )
    assert all(r.status_code == 200 for r in replies)
    assert stub.batches == [1] * 8


def test_metrics_count_requests_by_endpoint_and_status_and_batch_sizes(client):
    assert client.post("/v1/rewards", json=reward_request()).status_code == 200
    assert client.post("/v1/rewards", content=b"{").status_code == 422
    client.get("/nowhere/at/all")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'rs_serve_requests_total{endpoint="/v1/rewards",status="200"} 1.0' in text
    assert 'rs_serve_requests_total{endpoint="/v1/rewards",status="422"} 1.0' in text
    assert 'rs_serve_requests_total{endpoint="other",status="404"} 1.0' in text
    assert 'rs_serve_request_seconds_count{endpoint="/v1/rewards"} 2.0' in text
    assert "rs_serve_batch_size_count 1.0" in text
    assert 'rs_serve_batch_size_bucket{le="2.0"} 1.0' in text


def test_scorer_exception_fails_the_request_with_500_and_the_server_goes_on(client):
    r = client.post("/v1/rewards", json=reward_request(c1="boom"))
    assert r.status_code == 500
    assert "the stub was told to fail" in r.json()["detail"]
    assert_still_serving(client)


def test_shutdown_scores_every_queued_pair_before_stopping():
    stub = StubScorer(delay_s=0.01)

    async def scenario() -> list[list[float]]:
        batcher = Batcher(stub, max_batch=2, max_wait_ms=1000)
        await batcher.start()
        image = Image.new("RGB", (4, 4))
        requests = [
            asyncio.create_task(batcher.score([ScoreItem(image, "x" * i)])) for i in range(1, 6)
        ]
        await asyncio.sleep(0)  # every request has queued its pair
        await batcher.close()
        return [await r for r in requests]

    assert asyncio.run(scenario()) == [[0.1], [0.2], [0.3], [0.4], [0.5]]
    assert stub.batches == [2, 2, 1]  # the long wait did not hold the drain up


def test_server_stops_gracefully_with_a_request_in_flight():
    stub = StubScorer(delay_s=0.3)
    app = create_app(stub, scorer_version="stub-000000", settings=SETTINGS)
    server = start_in_thread(app, "127.0.0.1", 0)
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["r"] = httpx.post(f"{server.url}/v1/rewards", json=reward_request(), timeout=10)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.1)  # the request is being scored
    server.stop()
    caller.join(5)
    assert result["r"].status_code == 200


def test_serve_with_an_unknown_version_lists_the_known_ones(tiny_config, capsys):
    from rs_pipeline.core.config import load_config
    from rs_pipeline.core.scoring.versions import versions

    assert main(["serve", "--scorer", "nope-123456", "--config", tiny_config]) == 2
    err = capsys.readouterr().err
    assert "'nope-123456' is not defined" in err
    known = sorted(versions(load_config(tiny_config)))
    assert known and all(v in err for v in known)


def test_serve_without_a_stored_scorer_says_to_materialize_score_model(tiny_config, capsys):
    assert main(["serve", "--scorer", "current", "--config", tiny_config]) == 2
    assert "materialize score_model" in capsys.readouterr().err


def test_a_stored_scorer_is_served_under_its_version(tiny_config):
    from rs_pipeline.core.artifacts import ArtifactStore
    from rs_pipeline.core.config import load_config
    from rs_pipeline.core.layout import model_dir
    from rs_pipeline.core.scoring.backends import save_scorer
    from rs_pipeline.core.scoring.baselines import RandomScorer
    from rs_pipeline.core.scoring.versions import spec_for, version_named
    from rs_pipeline.core.serving.server import load_served_scorer

    cfg = load_config(tiny_config)
    version = version_named(cfg, "random")
    spec = spec_for(cfg, version)
    store = ArtifactStore(cfg.storage.root, cfg.storage.storage_options)
    save_scorer(RandomScorer(seed=spec.seed), spec, store.path(model_dir(version)))
    scorer, served = load_served_scorer(cfg, version)
    assert served == version
    app = create_app(scorer, scorer_version=served, settings=SETTINGS)
    with start_in_thread(app) as server:
        r = httpx.post(f"{server.url}/v1/score", json={"image_data": IMAGE, "texts": ["a", "b"]})
    assert r.status_code == 200 and r.json()["model"] == version
    image = Image.open(io.BytesIO(base64.b64decode(IMAGE))).convert("RGB")
    assert r.json()["scores"] == RandomScorer(seed=spec.seed).score([image] * 2, ["a", "b"])
