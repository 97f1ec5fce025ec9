"""The real clients against a live `rs-pipeline serve` on loopback: the paper's reward format
through `compute_score`, `RemoteScorer` in place of the in-process scorer, and `scorer_for`
refusing a service that serves another version."""

import math

import httpx
import pytest
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import load_config
from rs_pipeline.core.layout import model_dir
from rs_pipeline.core.rewards.client import RemoteScorer, RewardClient, encode_image
from rs_pipeline.core.scoring.apply import scorer_for
from rs_pipeline.core.scoring.backends import save_scorer
from rs_pipeline.core.scoring.baselines import RandomScorer
from rs_pipeline.core.scoring.versions import spec_for, version_named
from rs_pipeline.core.serving.app import create_app
from rs_pipeline.core.serving.server import load_served_scorer, start_in_thread
from rs_pipeline.rewards import compute_score

TILE = Image.new("RGB", (32, 32), (40, 120, 60))


@pytest.fixture
def served(tiny_config):
    """A stored `random` scorer version of the tiny preset, served on a free loopback port."""
    cfg = load_config(tiny_config)
    version = version_named(cfg, "random")
    store = ArtifactStore(cfg.storage.root, cfg.storage.storage_options)
    save_scorer(
        RandomScorer(seed=spec_for(cfg, version).seed),
        spec_for(cfg, version),
        store.path(model_dir(version)),
    )
    scorer, version = load_served_scorer(cfg, version)
    with start_in_thread(create_app(scorer, scorer_version=version, settings=cfg.serving)) as srv:
        yield cfg, store, version, scorer, srv.url


def test_compute_score_shapes_the_live_servers_scores_as_the_paper_does(served):
    _, _, _, scorer, url = served
    reply = "<think>two tanks by the road</think> <answer>two storage tanks</answer>"
    out = compute_score(
        reply, "a field", problem="What is there?", images=[TILE], reward_server_url=url
    )
    s_answer, s_ref = scorer.score(
        [TILE, TILE], ["two storage tanks", "a field"], questions=["What is there?"] * 2
    )
    accuracy = 1 - math.exp(-0.2 * (s_answer - s_ref)) if s_answer > s_ref else 0.0
    assert out["format"] == 1.0
    assert out["accuracy"] == pytest.approx(accuracy)
    assert out["overall"] == pytest.approx(0.3 + 0.7 * accuracy)


def test_a_plain_http_client_speaking_the_reward_format_gets_both_scores(served):
    _, _, _, _, url = served
    body = {
        "model": "m",
        "problem_description": "q",
        "image_data": "data:image/png;base64," + encode_image(TILE),
        "completion1": "a",
        "completion2": "b",
    }
    r = httpx.post(f"{url}/v1/rewards", json=body, timeout=10)
    ids = [s["completion_id"] for s in r.json()["scores"]]
    assert (
        r.status_code == 200 and r.json()["model"] == "m" and ids == ["completion1", "completion2"]
    )
    bad = httpx.post(f"{url}/v1/rewards", json={"model": "m"}, timeout=10)
    assert bad.status_code == 422 and "detail" in bad.json()
    assert httpx.post(f"{url}/v1/rewards", json=body, timeout=10).status_code == 200


def test_remote_scorer_scores_like_the_in_process_one(served):
    cfg, store, version, scorer, url = served
    remote = scorer_for(cfg, store, version, url=url)
    assert isinstance(remote, RemoteScorer)
    texts = ["a lake", "a forest", "a road"]
    assert remote.score([TILE] * 3, texts) == pytest.approx(scorer.score([TILE] * 3, texts))


def test_scorer_for_refuses_a_service_serving_another_version(served):
    cfg, store, _, _, url = served
    with pytest.raises(ValueError, match="rs-pipeline serve --scorer clip-head"):
        scorer_for(cfg, store, version_named(cfg, "clip-head"), url=url)


def test_without_a_url_scorer_for_loads_the_stored_scorer_in_process(served):
    cfg, store, version, _, _ = served
    assert not isinstance(scorer_for(cfg, store, version), RemoteScorer)
    assert RewardClient(url="http://127.0.0.1:9").url == "http://127.0.0.1:9"
