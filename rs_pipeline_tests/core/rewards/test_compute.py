import base64
import io
import logging
import math

import pytest
from PIL import Image

import rs_pipeline.rewards
from rs_pipeline.core.rewards.client import RewardClient, ScorerUnreachable
from rs_pipeline.core.rewards.compute import compute_score

KEYS = {"overall", "format", "accuracy"}
REPLY = "<think>I count the round shapes.</think>\n<answer>two\nstorage tanks</answer>"
ACCURACY = 1 - math.exp(-0.2 * (6.0 - 1.0))  # the stub scores (6, 1)


def fast_client(url: str, **overrides) -> RewardClient:
    settings = {"timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01, **overrides}
    return RewardClient(url=url, **settings)


def test_public_entry_point_is_the_core_function():
    assert rs_pipeline.rewards.compute_score is compute_score
    assert rs_pipeline.rewards.__all__ == ["compute_score"]


def test_open_ended_sends_answer_and_truth_with_the_first_image(stub, tile):
    other = Image.new("RGB", (2, 2))
    got = compute_score(
        REPLY,
        "Three tanks.",
        problem="<image>How many tanks?",
        images=[tile, other],
        reward_server_url=stub.url + "/v1/rewards",  # the official client's full address
    )
    assert got == pytest.approx(
        {"overall": 0.3 + 0.7 * ACCURACY, "format": 1.0, "accuracy": ACCURACY}
    )
    body = stub.requests[0]["body"]
    assert body["completion1"] == "two\nstorage tanks"
    assert body["completion2"] == "Three tanks."
    assert body["problem_description"] == "How many tanks?"
    sent = Image.open(io.BytesIO(base64.b64decode(body["image_data"])))
    assert sent.size == (4, 4)


def test_open_ended_gives_no_accuracy_when_the_reference_scores_higher(stub, tile):
    stub.rewards = (1.0, 6.0)
    got = compute_score(REPLY, "three", images=[tile], client=fast_client(stub.url))
    assert got == pytest.approx({"overall": 0.3, "format": 1.0, "accuracy": 0.0})


def test_a_malformed_reply_scores_zero_without_asking_the_service(stub, tile):
    got = compute_score("two tanks", "three", images=[tile], client=fast_client(stub.url))
    assert got == {"overall": 0.0, "format": 0.0, "accuracy": 0.0}
    assert stub.requests == []


def test_retries_a_failing_service_then_scores(stub, tile):
    stub.fail_first = 2
    got = compute_score(REPLY, "three", images=[tile], client=fast_client(stub.url))
    assert got["accuracy"] == pytest.approx(ACCURACY)
    assert len(stub.requests) == 3


def test_a_service_past_its_timeout_raises_scorer_unreachable_naming_the_url(stub, tile):
    stub.sleep_s = 0.6
    client = fast_client(stub.url, timeout_s=0.15, max_retries=1)
    with pytest.raises(ScorerUnreachable, match=rf"{stub.url}/v1/rewards.*rs-pipeline serve"):
        compute_score(REPLY, "three", images=[tile], client=client)


def test_a_rejected_request_raises_value_error_with_the_servers_message(stub, tile):
    stub.status, stub.detail = 422, "image_data is not base64"
    with pytest.raises(ValueError, match="HTTP 422.*image_data is not base64"):
        compute_score(REPLY, "three", images=[tile], client=fast_client(stub.url))
    assert len(stub.requests) == 1  # a 4xx is never retried


def test_on_unreachable_zero_scores_no_accuracy_and_warns(closed_url, tile, caplog):
    client = fast_client(closed_url, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="rs_pipeline.core.rewards.compute"):
        got = compute_score(REPLY, "three", images=[tile], client=client, on_unreachable="zero")
    assert got == pytest.approx({"overall": 0.3, "format": 1.0, "accuracy": 0.0})
    assert closed_url in caplog.text


def test_the_bearer_token_comes_from_the_env_var(stub, tile, monkeypatch):
    stub.token = "t0ken"
    monkeypatch.setenv("RS_PIPELINE_SERVE_TOKEN", "t0ken")
    got = compute_score(REPLY, "three", images=[tile], reward_server_url=stub.url)
    assert got["accuracy"] == pytest.approx(ACCURACY)
    assert stub.requests[0]["headers"]["authorization"] == "Bearer t0ken"


def test_open_ended_without_a_service_names_both_ways_to_give_one(tile):
    with pytest.raises(ValueError, match=r"reward_server_url=.*client="):
        compute_score(REPLY, "three", images=[tile])


def test_open_ended_without_an_image_says_what_to_pass(stub):
    with pytest.raises(ValueError, match="images="):
        compute_score(REPLY, "three", client=fast_client(stub.url))


def test_rule_reward_types_need_no_service():
    em = compute_score("<think>x</think><answer>Three</answer>", "three", reward_type="em")
    iou = compute_score(
        "<think>x</think><answer>[1, 1, 9, 9]</answer>", "[1,1,9,9]", reward_type="iou"
    )
    assert em == iou == {"overall": 1.0, "format": 1.0, "accuracy": 1.0}


def test_every_branch_returns_the_same_three_keys(stub, tile):
    client = fast_client(stub.url)
    for reward_type in ("em", "iou", "open_ended"):
        for reply in (REPLY, "no format at all"):
            truth = "[0, 0, 5, 5]" if reward_type == "iou" else "three"
            got = compute_score(reply, truth, images=[tile], reward_type=reward_type, client=client)
            assert got.keys() == KEYS


def test_unknown_settings_name_the_valid_choices():
    with pytest.raises(ValueError, match="open_ended"):
        compute_score(REPLY, "three", reward_type="math")
    with pytest.raises(ValueError, match="on_unreachable"):
        compute_score(REPLY, "three", on_unreachable="ignore")
