"""score_model registers external checkpoints and writes safetensors, config and metrics."""

import json

import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.layout import model_dir
from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.scoring.stage import run_score_model
from rs_pipeline.core.scoring.versions import scorer_version, versions
from rs_pipeline_tests.core.pairs.test_stage import engine
from rs_pipeline_tests.factories import write_config


@pytest.mark.slow
def test_registered_checkpoint_is_not_retrained_and_is_versioned_by_its_weights(tmp_path):
    checkpoint = tmp_path / "external"
    ClipHeadScorer(seed=3).save(checkpoint)
    config = write_config(
        tmp_path,
        scoring={"scorers": [{"name": "ext", "backend": "clip_head",
                              "checkpoint": str(checkpoint)}], "current": "ext"},
    )  # fmt: skip
    store, *_ = engine(config)
    cfg = load_config(config)
    (version,) = versions(cfg.scoring)
    assert version == scorer_version(cfg.scoring.scorers[0])
    report = run_score_model(cfg, version, store, log=lambda _: None)
    assert report.history == []  # registered, not trained
    files = set(store.fs.ls(store.path(model_dir(version)), detail=False))
    names = {f.rsplit("/", 1)[1] for f in files}
    assert {"model.safetensors", "config.json", "metrics.json"} <= names
    assert not any(n.endswith((".pt", ".pth", ".bin", ".pkl")) for n in names)
    metrics = json.loads(store.fs.cat_file(store.path(model_dir(version), "metrics.json")))
    assert metrics["val_pairwise_accuracy"] == pytest.approx(report.val_accuracy)
