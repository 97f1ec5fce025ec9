"""The data engine end to end on the tiny preset: ingest, caption, judge, pair."""

import json

import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.config import load_config
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.pairs.stage import run_pairs
from rs_pipeline_tests.factories import encode, noise_rgb, write_config


def engine(config_path: str, batch: str = "b1"):
    cfg = load_config(config_path)
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    ingest = run_ingest(cfg, batch, store, lineage, "r1")
    captions = run_captions(cfg, batch, store, lineage, "r1")
    pairs = run_pairs(cfg, batch, store, lineage, "r1")
    return store, lineage, ingest, captions, pairs


def curated(config_path: str):
    """`engine`, then every configured scorer version's model, scores and subsets, called
    directly: (cfg, store, lineage) for tests of what trains on the selections."""
    from rs_pipeline.core.scoring.apply import run_pair_scores
    from rs_pipeline.core.scoring.stage import run_score_model
    from rs_pipeline.core.scoring.versions import versions
    from rs_pipeline.core.selection.stage import run_curated_subsets

    store, lineage, *_ = engine(config_path)
    cfg = load_config(config_path)
    for version in versions(cfg.scoring):
        run_score_model(cfg, version, store, log=lambda _: None)
        run_pair_scores(cfg, version, "b1", store, lineage, "r1")
        run_curated_subsets(cfg, version, store, lineage, "r1")
    return cfg, store, lineage


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return engine(write_config(tmp_path_factory.mktemp("engine")))


def test_candidates_come_from_every_enabled_captioner_with_true_quality(tiny_run):
    store, _, ingest, captions, _ = tiny_run
    assert set(captions.by_captioner) >= {"template/v1", "degrader/v1", "degrader/v1:faithful"}
    rows = pq.read_table(captions.url).to_pylist()
    by_source = {r["sample_id"]: r["source"] for r in
                 store.read_table("rs_images/batch=b1/samples.parquet").to_pylist()}  # fmt: skip
    for r in rows:
        known = by_source[r["sample_id"]] == "synthrs"
        assert (r["quality"] is not None) == known  # ground truth only where it exists
    assert (
        captions.mean_quality_by_captioner["degrader/v1:faithful"]
        > (captions.mean_quality_by_captioner["degrader/v1"])
    )
    assert set(captions.by_degradation) <= {
        "hallucinated_object", "wrong_count", "wrong_class", "wrong_position", "wrong_colour",
        "generic", "truncated", "garbled",
    }  # fmt: skip


def test_caption_pairs_put_the_oracle_best_first(tiny_run):
    store, *_, pairs = tiny_run
    rows = pq.read_table(pairs.url).to_pylist()
    caption_pairs = [r for r in rows if r["kind"] == "caption"]
    assert caption_pairs and all(r["margin"] > 0 for r in caption_pairs)
    assert {r["judge"] for r in caption_pairs} == {"oracle/v1"}
    # The unlabelled Sentinel-2 chips have one honest metadata caption each: nothing to rank.
    assert pairs.skipped["fewer_than_2_candidates"] == 8


def test_vqa_pairs_reject_wrong_answers_and_filter_right_ones(tiny_run):
    *_, pairs = tiny_run
    rows = pq.read_table(pairs.url).to_pylist()
    vqa = [r for r in rows if r["kind"].startswith("vqa")]
    assert vqa and all(r["question"] and r["chosen"] != r["rejected"] for r in vqa)
    assert pairs.vqa["filtered_already_right"] > 0


def test_no_image_is_in_both_splits_and_both_splits_exist(tiny_run):
    *_, pairs = tiny_run
    assert pairs.samples_in_both_splits == 0
    assert pairs.by_split["train"] > 0 and pairs.by_split["val"] > 0


def test_label_consistency_agreement_with_oracle_is_measured(tiny_run):
    *_, pairs = tiny_run
    rate = pairs.agreement_with_oracle["label-consistency/v1"]
    assert rate is not None and 0.0 <= rate <= 1.0


def test_lineage_holds_captions_and_pairs_of_the_batch(tiny_run):
    _, lineage, _, captions, pairs = tiny_run
    n_caps = lineage.query("SELECT count(*) FROM captions WHERE batch = 'b1'").column(0)[0]
    n_pairs = lineage.query("SELECT count(*) FROM pairs WHERE batch = 'b1'").column(0)[0]
    assert n_caps.as_py() == captions.candidates
    assert n_pairs.as_py() == sum(pairs.by_kind.values())


def test_fixed_seed_gives_identical_candidates_and_pairs(tmp_path, tiny_run):
    *_, captions, pairs = tiny_run
    _, _, _, captions2, pairs2 = engine(write_config(tmp_path))
    sort = lambda t: sorted(t.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True))  # noqa: E731
    assert sort(pq.read_table(captions.url)) == sort(pq.read_table(captions2.url))
    assert sort(pq.read_table(pairs.url)) == sort(pq.read_table(pairs2.url))


def test_imported_rsrm_pairs_attach_to_ingested_images(tmp_path):
    folder = tmp_path / "user" / "forest"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(encode(noise_rgb(seed=9), "PNG"))
    prefs = tmp_path / "prefs.json"
    prefs.write_text(json.dumps([
        {"chosen": "dense forest", "rejected": ["a beach", "a city"], "image_path": "forest/a.png"},
        {"chosen": "x", "rejected": "y", "image_path": "forest/missing.png"},
    ]))  # fmt: skip
    config = write_config(
        tmp_path,
        sources=[{"kind": "imagefolder", "name": "user", "path": str(tmp_path / "user")}],
        pairs={"import_files": [str(prefs)], "import_image_root": str(tmp_path / "user")},
    )
    *_, pairs = engine(config)
    assert pairs.by_kind["imported"] == 2
    assert pairs.imports["attached_pairs"] == 2 and pairs.imports["image_missing"] == 1


@pytest.mark.slow
def test_tiny_vlm_captions_and_answers_run_through_the_stages(tmp_path):
    config = write_config(
        tmp_path,
        captions={"vlm": {"enabled": True, "checkpoint": "tiny", "max_new_tokens": 8}},
        pairs={"vqa": {"answerer": "vlm", "max_per_image": 2}},
    )
    _, _, ingest, captions, pairs = engine(config)
    assert captions.by_captioner["vlm:qwen2vl-tiny@p1"] == ingest.counts.unique
    # An untrained model answers wrongly (or not at all); each wrong answer is a rejected side.
    asked = sum(v for k, v in pairs.vqa.items() if k.startswith("asked_"))
    accounted = pairs.vqa["filtered_already_right"] + pairs.vqa["no_answer"]
    assert asked == accounted + pairs.by_kind["vqa_closed"] + pairs.by_kind["vqa_open"]


def test_judged_fraction_judges_a_stable_share_of_images_and_counts_the_rest(tmp_path):
    from rs_pipeline.core.pairs.stage import is_judged

    def run(folder):
        folder.mkdir(exist_ok=True)
        source = {"kind": "synthrs", "name": "synthrs", "count": 40, "size": 64, "seed": 7}
        return engine(write_config(folder, pairs={"judged_fraction": 0.5}, sources=[source]))[-1]

    pairs = run(tmp_path / "first")
    assert pairs.judged_images + pairs.skipped["not_judged"] == 40
    assert 10 <= pairs.judged_images <= 30
    judged = {r["sample_id"] for r in pq.read_table(pairs.url).to_pylist()}
    assert len(judged) <= pairs.judged_images  # pairs (caption and VQA) only from judged images
    assert all(is_judged(sid, 0.5, 0) for sid in judged)
    again = run(tmp_path / "again")
    assert {r["sample_id"] for r in pq.read_table(again.url).to_pylist()} == judged


def test_split_follows_pairs_split_seed_not_captions_seed(tmp_path):
    cfg = load_config(write_config(tmp_path))
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    run_ingest(cfg, "b1", store, lineage, "r1")
    run_captions(cfg, "b1", store, lineage, "r1")

    def splits(**sections) -> dict[str, str]:
        # Same stored captions every time: only the pairs stage sees the changed seed.
        variant = load_config(write_config(tmp_path, **sections))
        pairs = run_pairs(variant, "b1", store, lineage, "r1")
        return {r["sample_id"]: r["split"] for r in pq.read_table(pairs.url).to_pylist()}

    default = splits()
    assert splits(captions={"seed": 5}) == default  # re-seeding captioners keeps train/val
    assert splits(pairs={"split_seed": 0}) == default  # 0 is the split captions.seed 0 gave
    moved = splits(pairs={"split_seed": 5})
    assert moved.keys() == default.keys() and moved != default
