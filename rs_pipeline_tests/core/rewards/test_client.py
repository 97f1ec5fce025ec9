import base64
import io
import pickle
import time

import pytest
from PIL import Image

from rs_pipeline.core.config import ServingConfig
from rs_pipeline.core.rewards.client import (
    RemoteScorer,
    RewardClient,
    ScorerUnreachable,
    encode_image,
)


def fast_client(url: str, **overrides) -> RewardClient:
    settings = {"timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01, **overrides}
    return RewardClient(url=url, **settings)


def test_encode_image_sends_pil_images_as_png_and_bytes_or_files_as_they_are(tile, tmp_path):
    decoded = Image.open(io.BytesIO(base64.b64decode(encode_image(tile))))
    assert decoded.format == "PNG" and decoded.getpixel((0, 0)) == (10, 200, 30)
    assert base64.b64decode(encode_image(b"\x89raw")) == b"\x89raw"
    path = tmp_path / "tile.png"
    path.write_bytes(b"file bytes")
    assert base64.b64decode(encode_image(str(path))) == b"file bytes"
    assert base64.b64decode(encode_image({"bytes": b"hf", "path": None})) == b"hf"
    assert encode_image("data:image/png;base64,QUJD") == "data:image/png;base64,QUJD"


def test_encode_image_names_what_it_accepts():
    with pytest.raises(TypeError, match="PIL image"):
        encode_image(3.5)


def test_client_keeps_the_service_root_even_from_an_endpoint_address():
    assert RewardClient(url="http://h:8008/v1/rewards/").url == "http://h:8008"
    with pytest.raises(ValueError, match="serving.url"):
        RewardClient(url="h:8008")


def test_from_config_takes_the_sections_url_timeout_retries_and_token():
    settings = ServingConfig(url="http://h:1", timeout_s=4.0, max_retries=5, token_env="MY_TOKEN")
    client = RewardClient.from_config(settings)
    assert (client.url, client.timeout_s, client.max_retries, client.token_env) == (
        "http://h:1",
        4.0,
        5,
        "MY_TOKEN",
    )
    assert RewardClient.from_config(settings, url="http://other:2").url == "http://other:2"
    with pytest.raises(ValueError, match="set serving.url"):
        RewardClient.from_config(ServingConfig())


def test_rewards_returns_both_completions_scores(stub, tile):
    scores = fast_client(stub.url).rewards(
        problem="How many tanks?",
        image_b64=encode_image(tile),
        completion1="two",
        completion2="three",
    )
    assert scores == (6.0, 1.0)
    body = stub.requests[0]["body"]
    assert stub.requests[0]["path"] == "/v1/rewards"
    assert (body["model"], body["completion1"], body["completion2"]) == (
        "rs-pipeline",
        "two",
        "three",
    )


def test_retries_5xx_then_succeeds(stub):
    stub.fail_first = 2
    scores = fast_client(stub.url).score(image_b64="QUJD", texts=["a", "bb"])
    assert scores == [1.0, 2.0]
    assert len(stub.requests) == 3


def test_exhausted_retries_raise_scorer_unreachable_with_the_servers_message(stub):
    stub.fail_first = 10
    with pytest.raises(ScorerUnreachable, match="warming up") as caught:
        fast_client(stub.url, max_retries=1).score(image_b64="QUJD", texts=["a"])
    assert caught.value.attempts == 2 and len(stub.requests) == 2


def test_timeout_raises_scorer_unreachable_naming_the_url_and_the_command(stub):
    stub.sleep_s = 0.6
    client = fast_client(stub.url, timeout_s=0.15, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ScorerUnreachable) as caught:
        client.score(image_b64="QUJD", texts=["a"])
    assert time.monotonic() - started < 0.6 * 2  # gave up on time, did not wait the server out
    message = str(caught.value)
    assert f"{stub.url}/v1/score" in message and "timed out" in message
    assert "rs-pipeline serve --scorer VERSION" in message


def test_refused_connection_raises_scorer_unreachable(closed_url):
    with pytest.raises(ScorerUnreachable, match="connection failed"):
        fast_client(closed_url, max_retries=0).score(image_b64="QUJD", texts=["a"])


def test_4xx_raises_value_error_with_the_servers_message_without_retrying(stub):
    stub.status, stub.detail = 413, "image has 9000000 pixels; the limit is 4000000"
    with pytest.raises(ValueError, match="HTTP 413.*limit is 4000000"):
        fast_client(stub.url).score(image_b64="QUJD", texts=["a"])
    assert len(stub.requests) == 1


def test_bearer_token_is_read_from_the_env_var_at_call_time(stub, monkeypatch):
    stub.token = "s3cret"
    client = fast_client(stub.url, token_env="RS_TEST_SERVE_TOKEN")
    monkeypatch.delenv("RS_TEST_SERVE_TOKEN", raising=False)
    with pytest.raises(ValueError, match="set RS_TEST_SERVE_TOKEN"):
        client.score(image_b64="QUJD", texts=["a"])
    monkeypatch.setenv("RS_TEST_SERVE_TOKEN", "s3cret")
    assert client.score(image_b64="QUJD", texts=["a"]) == [1.0]
    assert stub.requests[-1]["headers"]["authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(client)


def test_score_of_no_texts_makes_no_request(stub):
    assert fast_client(stub.url).score(image_b64="QUJD", texts=[]) == []
    assert stub.requests == []


def test_remote_scorer_sends_one_request_per_run_of_shared_image_and_question(stub, tile):
    other = Image.new("RGB", (4, 4), (0, 0, 0))
    scorer = RemoteScorer(fast_client(stub.url))
    images = [tile, tile, tile, other, tile]
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    questions = ["q1", "q1", "q2", "q2", "q2"]
    assert scorer.score(images, texts, questions=questions) == [1.0, 2.0, 3.0, 4.0, 5.0]
    sent = [(r["body"]["texts"], r["body"]["question"]) for r in stub.requests]
    assert sent == [(["a", "bb"], "q1"), (["ccc"], "q2"), (["dddd"], "q2"), (["eeeee"], "q2")]
    assert scorer.backend == "remote"


def test_remote_scorer_splits_long_runs_at_batch_size(stub, tile):
    scorer = RemoteScorer(fast_client(stub.url), batch_size=2)
    assert scorer.score([tile] * 5, ["a"] * 5) == [1.0] * 5
    assert [len(r["body"]["texts"]) for r in stub.requests] == [2, 2, 1]
    assert stub.requests[0]["body"]["question"] is None
    scorer.score([tile] * 3, ["a"] * 3, batch_size=3)
    assert len(stub.requests[-1]["body"]["texts"]) == 3


def test_remote_scorer_wants_one_text_per_image(stub, tile):
    with pytest.raises(ValueError, match="one each"):
        RemoteScorer(fast_client(stub.url)).score([tile], ["a", "b"])


def test_client_and_its_failure_survive_pickling_into_workers():
    client = RewardClient(url="http://h:1", timeout_s=3.0)
    assert pickle.loads(pickle.dumps(client)) == client
    error = pickle.loads(
        pickle.dumps(ScorerUnreachable(url="http://h:1", detail="down", attempts=3))
    )
    assert (error.url, error.attempts) == ("http://h:1", 3) and "rs-pipeline serve" in str(error)
