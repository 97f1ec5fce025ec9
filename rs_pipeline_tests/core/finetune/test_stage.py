"""clip_checkpoints on real tiny-preset selections: equal steps, seeds, reuse, decontamination."""

import json

import pytest
from safetensors.torch import load_file

from rs_pipeline.core.finetune.stage import run_clip_checkpoints
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline_tests.core.pairs.test_stage import curated
from rs_pipeline_tests.factories import encode, noise_rgb, write_config


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finetune")
    leak = tmp / "leaky_eval"
    config = write_config(
        tmp,
        scoring={"scorers": [{"name": "r0", "backend": "random"}], "current": "r0"},
        evaluation={"benchmarks": [
            {"name": "heldout", "kind": "synthrs", "count": 14},
            {"name": "leaky", "kind": "classification", "path": str(leak)}]},
    )  # fmt: skip
    cfg, store, lineage = curated(config)
    (version,) = versions(cfg.scoring)
    # An evaluation set holding 3 images the pool trained on (their original PNG bytes).
    images = store.read_table("rs_images/batch=b1/images.parquet").to_pylist()
    pngs = [r["data"] for r in images if r["format"] == "PNG"][:3]
    for cls, blobs in {"a": pngs[:2], "b": pngs[2:] + [encode(noise_rgb(32, 1), "PNG")]}.items():
        (leak / cls).mkdir(parents=True)
        for i, data in enumerate(blobs + [encode(noise_rgb(32, 10 + i), "PNG") for i in range(2)]):
            (leak / cls / f"{i}.png").write_bytes(data)
    return cfg, store, lineage, version


def test_every_selection_trains_equal_steps_per_seed_into_safetensors(selected):
    cfg, store, lineage, version = selected
    top = run_clip_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    everything = run_clip_checkpoints(cfg, "all@100", store, lineage, "r1")
    assert everything.train_pairs > top.train_pairs > 1
    assert (
        [r.seed for r in top.runs] == list(cfg.finetune.seeds) == [r.seed for r in everything.runs]
    )
    meta = json.loads(store.fs.cat_file(store.path(
        f"clip_checkpoints/selection={version}@30/seed=0/config.json")))  # fmt: skip
    assert meta["selection"] == f"{version}@30" and meta["manifest_digest"] == top.digest
    assert meta["plan"]["steps"] == cfg.finetune.steps == len(meta["losses"])
    weights = load_file(
        store.path(f"clip_checkpoints/selection={version}@30/seed=0/model.safetensors")
    )
    assert weights and all(v.isfinite().all() for v in weights.values())
    rows = lineage.query("SELECT selection, seed, steps FROM checkpoints ORDER BY 1, 2").to_pylist()
    assert {r["steps"] for r in rows} == {cfg.finetune.steps} and len(rows) == 2 * len(top.runs)


def test_each_seed_is_evaluated_on_every_benchmark_and_metric(selected):
    cfg, store, lineage, version = selected
    rep = run_clip_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    got = {(r.seed, r.benchmark, r.metric) for r in rep.results}
    for seed in cfg.finetune.seeds:
        assert {(seed, "heldout", m) for m in ("top1", "top5", "t2i_R@1", "mean_recall")} <= got
        assert (seed, "leaky", "top1") in got and (seed, "leaky", "t2i_R@1") not in got
    n = lineage.query("SELECT count(*) AS n FROM eval_results WHERE selection = ?",
                      [f"{version}@30"]).column("n")[0].as_py()  # fmt: skip
    assert n == len(rep.results)


def test_eval_images_the_training_pool_holds_are_excluded_and_counted(selected):
    cfg, store, lineage, version = selected
    rep = run_clip_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    assert rep.excluded == {"heldout": 0, "leaky": 3}
    leaky = [r for r in rep.results if r.benchmark == "leaky"]
    assert {(r.n_images, r.excluded) for r in leaky} == {(5, 3)}


def test_rerun_reuses_matching_checkpoints_and_reproduces_results(selected):
    cfg, store, lineage, version = selected
    first = run_clip_checkpoints(cfg, f"{version}@30", store, lineage, "r1")
    again = run_clip_checkpoints(cfg, f"{version}@30", store, lineage, "r2")
    assert all(r.reused for r in again.runs)
    assert [r.value for r in again.results] == pytest.approx([r.value for r in first.results])
    n = lineage.query("SELECT count(*) AS n FROM checkpoints WHERE selection = ?",
                      [f"{version}@30"]).column("n")[0].as_py()  # fmt: skip
    assert n == len(cfg.finetune.seeds)  # replaced, not duplicated


def test_all_selection_rows_join_to_its_checkpoints_in_lineage(selected):
    cfg, store, lineage, _ = selected
    run_clip_checkpoints(cfg, "all@100", store, lineage, "r1")
    fed = (
        lineage.query(
            "SELECT count(DISTINCT s.sample_id) AS n FROM checkpoints c "
            "JOIN selections s USING (selection) WHERE c.selection = 'all@100'"
        )
        .column("n")[0]
        .as_py()
    )
    pool = lineage.query("SELECT count(DISTINCT sample_id) AS n FROM captions WHERE status='ok'")
    assert fed == pool.column("n")[0].as_py() > 0
