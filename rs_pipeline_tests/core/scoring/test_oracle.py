"""The oracle scorer reads back the true quality the data engine recorded, and only that."""

import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.scoring.apply import run_pair_scores
from rs_pipeline.core.scoring.oracle import OracleScorer
from rs_pipeline.core.scoring.stage import run_score_model
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline_tests.core.pairs.test_stage import engine
from rs_pipeline_tests.factories import noise_rgb, write_config

ORACLE_ONLY = {"scorers": [{"name": "oracle", "backend": "oracle"}], "current": "oracle"}


def test_oracle_scores_are_the_recorded_true_quality(tmp_path):
    config = write_config(tmp_path, scoring=ORACLE_ONLY, sources=[
        {"kind": "synthrs", "name": "synthrs", "count": 16, "size": 64, "seed": 7}])  # fmt: skip
    store, lineage, *_ = engine(config)
    cfg = load_config(config)
    (version,) = versions(cfg.scoring)
    report = run_score_model(cfg, version, store, log=lambda _: None)
    assert report.val_accuracy == 1.0  # best-vs-rest pairs of the oracle judge, read back
    run_pair_scores(cfg, version, "b1", store, lineage, "r1")
    got = lineage.query(
        "SELECT s.score, c.quality FROM scores s JOIN captions c USING (caption_id)"
    ).to_pylist()
    assert got and all(r["score"] == pytest.approx(r["quality"]) for r in got)


def test_oracle_refuses_a_pair_of_unknown_quality_and_a_pool_without_any(tmp_path):
    scorer = OracleScorer({("digest", "a lake"): 1.0})
    with pytest.raises(ValueError, match="no known true quality"):
        scorer.score([noise_rgb(8)], ["a lake"])
    config = write_config(tmp_path, scoring=ORACLE_ONLY, sources=[
        {"kind": "sentinel2", "name": "sentinel2", "chip_size": 64, "max_chips": 4}])  # fmt: skip
    store, *_ = engine(config)
    with pytest.raises(ValueError, match="captions.noise.rate"):
        OracleScorer.from_store(store, ["b1"])
