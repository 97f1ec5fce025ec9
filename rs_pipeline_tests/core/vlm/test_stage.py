"""vlm_checkpoints and bon_eval on real tiny-preset selections: ShareGPT set, equal steps,
reuse of matching checkpoints, VQA rows beside CLIP's, best-of-N rows with their scorer."""

import json

import pytest

from rs_pipeline.core.scoring.versions import current_version
from rs_pipeline.core.vlm.bon_stage import run_bon_eval, runs_bon
from rs_pipeline.core.vlm.stage import run_vlm_checkpoints, trains_vlm
from rs_pipeline_tests.core.pairs.test_stage import curated
from rs_pipeline_tests.factories import write_config

VLM = {
    "enabled": True,
    "ratios": [30],
    "steps": 4,
    "batch_size": 4,
    "lr": 1e-3,
    "seeds": [0],
    "checkpoint_every": 2,
    "max_new_tokens": 3,
    "vqa_count": 4,
    "bon": {"n": [1, 2, 3], "max_questions": 6},
}


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vlm")
    config = write_config(
        tmp,
        scoring={
            "scorers": [
                {"name": "r0", "backend": "random"},
                {"name": "clipscore", "backend": "clipscore", "warm_start_steps": 2},
            ],
            "current": "r0",
        },
        evaluation={"benchmarks": [{"name": "heldout", "kind": "synthrs", "count": 14}]},
        vlm=VLM,
    )
    cfg, store, lineage = curated(config)
    return cfg, store, lineage, current_version(cfg)


def test_the_vlm_trains_only_on_its_ratios_and_all(selected):
    cfg, _, _, version = selected
    assert trains_vlm(cfg, f"{version}@30") and trains_vlm(cfg, "all@100")
    assert not trains_vlm(cfg, f"{version}@60")
    assert runs_bon(cfg, f"{version}@30")
    off = cfg.model_copy(update={"vlm": cfg.vlm.model_copy(update={"enabled": False})})
    assert not trains_vlm(off, "all@100")


def test_vlm_checkpoints_write_sharegpt_equal_steps_and_vqa_rows(selected):
    cfg, store, lineage, version = selected
    top = run_vlm_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    everything = run_vlm_checkpoints(cfg, "all@100", store, lineage, "r1")
    assert everything.train_examples > top.train_examples > 0
    records = json.loads(store.fs.cat_file(top.sft_url))
    assert len(records) == top.train_examples
    assert records[0]["messages"][0]["role"] == "user" and records[0]["images"]
    meta = json.loads(
        store.fs.cat_file(store.path(f"vlm_checkpoints/selection={version}@30/seed=0/rs_vlm.json"))
    )
    assert meta["selection"] == f"{version}@30" and meta["manifest_digest"] == top.digest
    assert len(meta["losses"]) == cfg.vlm.steps and meta["adapter"] is False  # tiny: full FT
    metrics = {(r.benchmark, r.metric) for r in top.results}
    assert ("synthrs-vqa", "vqa_all") in metrics and ("heldout", "vqa_scene") in metrics
    rows = lineage.query(
        "SELECT selection, count(*) AS n FROM eval_results WHERE asset = 'vlm_checkpoints' "
        "GROUP BY selection ORDER BY selection"
    ).to_pylist()
    assert {r["selection"] for r in rows} == {f"{version}@30", "all@100"}
    ckpts = lineage.query("SELECT * FROM vlm_checkpoints").to_pylist()
    assert {c["selection"] for c in ckpts} == {f"{version}@30", "all@100"}


def test_a_matching_vlm_checkpoint_is_reused_not_retrained(selected):
    cfg, store, lineage, version = selected
    first = run_vlm_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    again = run_vlm_checkpoints(cfg, f"{version}@30", store, lineage, "r2")
    assert all(r.reused for r in again.runs)
    assert [r.value for r in again.results] == [r.value for r in first.results]


def test_bon_eval_records_every_strategy_and_n_with_the_scorer_version(selected):
    cfg, store, lineage, version = selected
    run_vlm_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    rep = run_bon_eval(cfg, f"{version}@30", store, lineage, "r1")
    assert rep.scorer_version == version and rep.clip_version.startswith("clipscore-")
    got = {(r["strategy"], r["n"]) for r in rep.rows}
    assert ("greedy", 1) in got
    for strategy in ("scorer", "random", "majority", "clipscore"):
        assert {(strategy, n) for n in (1, 2, 3)} <= got
    stored = lineage.query("SELECT DISTINCT scorer_version FROM bon_results").to_pylist()
    assert stored == [{"scorer_version": version}]
    # At N=1 every strategy keeps the only sample: they agree exactly.
    at1 = {
        r["strategy"]: r["accuracy"]
        for r in rep.rows
        if r["n"] == 1 and r["benchmark"] == "synthrs-vqa" and r["strategy"] != "greedy"
    }
    assert len(set(at1.values())) == 1


def test_bon_eval_without_checkpoints_says_what_to_materialize(selected):
    cfg, store, lineage, version = selected
    untrained = cfg.model_copy(update={"vlm": cfg.vlm.model_copy(update={"seeds": (5,)})})
    with pytest.raises(FileNotFoundError, match="materialize vlm_checkpoints"):
        run_bon_eval(untrained, f"{version}@30", store, lineage, "r")
