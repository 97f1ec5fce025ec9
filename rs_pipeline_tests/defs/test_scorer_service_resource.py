"""The scorer_service resource picks, per deployment, where best-of-N and RL get their scorer."""

from rs_pipeline.core.config import load_config
from rs_pipeline.defs.resources import ScorerServiceResource, build_resources


def test_an_empty_url_keeps_the_in_process_scorer_and_a_url_points_assets_at_the_service():
    cfg = load_config("tiny")
    assert ScorerServiceResource().apply(cfg) is cfg and cfg.serving.url is None
    remote = ScorerServiceResource(url="http://scorer:8008").apply(cfg)
    assert remote.serving.url == "http://scorer:8008" and remote.serving.timeout_s == 30.0


def test_the_code_location_binds_the_resource_from_serving_url(tiny_config):
    assert build_resources(tiny_config)["scorer_service"].url == ""
