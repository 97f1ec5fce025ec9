"""curated_subsets over real tiny-preset scores: sizes, reasons, churn, lineage."""

import math

import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.scoring.apply import run_pair_scores
from rs_pipeline.core.scoring.stage import run_score_model
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.core.selection.stage import run_curated_subsets
from rs_pipeline_tests.core.pairs.test_stage import engine
from rs_pipeline_tests.factories import write_config


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("subsets")
    config = write_config(
        tmp,
        scoring={"scorers": [{"name": "r0", "backend": "random", "seed": 0},
                             {"name": "r1", "backend": "random", "seed": 1}], "current": "r0"},
        selection={"ratios": [30, 50]},
    )  # fmt: skip
    store, lineage, *_ = engine(config)
    cfg = load_config(config)
    for version in versions(cfg.scoring):
        run_score_model(cfg, version, store, log=lambda _: None)
        run_pair_scores(cfg, version, "b1", store, lineage, "r1")
    return cfg, store, lineage, list(versions(cfg.scoring))


def test_selections_keep_the_top_percent_with_reasons(scored):
    cfg, store, lineage, (v0, _) = scored
    rep = run_curated_subsets(cfg, v0, store, lineage, "r1")
    assert set(rep.kept) == {f"{v0}@30", f"{v0}@50"}
    assert rep.kept[f"{v0}@30"] == math.ceil(rep.pool * 0.3)
    table = pq.read_table(rep.urls[f"{v0}@30"]).to_pylist()
    scores = [r["score"] for r in table]
    assert scores == sorted(scores, reverse=True)
    assert all(r["reason"].startswith("rank ") and r["text"] for r in table)


def test_churn_against_the_previous_scorer_version_is_measured(scored):
    cfg, store, lineage, (v0, v1) = scored
    run_curated_subsets(cfg, v0, store, lineage, "r1")
    rep = run_curated_subsets(cfg, v1, store, lineage, "r2")
    assert rep.previous_version == v0
    c = rep.churn[f"{v1}@30"]
    assert c.kept + c.added == rep.kept[f"{v1}@30"] and 0.0 <= c.jaccard < 1.0
    rows = lineage.query("SELECT count(*) AS n FROM selections WHERE scorer_version = ?", [v1])
    assert rows.column("n")[0].as_py() == sum(rep.kept.values())


def test_missing_scores_say_what_to_materialize(scored):
    cfg, store, lineage, _ = scored
    with pytest.raises(FileNotFoundError, match="materialize pair_scores"):
        run_curated_subsets(cfg, "nope-000000", store, lineage, "r")


def test_webdataset_shards_hold_every_selected_pair_readable_by_webdataset(scored, tmp_path):
    import webdataset as wds

    cfg, store, lineage, (v0, _) = scored
    cfg = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"webdataset": True, "shard_size": 7})}
    )
    rep = run_curated_subsets(cfg, v0, store, lineage, "r1")
    name = f"{v0}@30"
    shards = rep.shards[name]
    assert len(shards) == math.ceil(rep.kept[name] / 7)
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil"))
    manifest = pq.read_table(rep.urls[name]).to_pylist()
    assert [s["__key__"] for s in samples] == [r["caption_id"] for r in manifest]
    assert [s["txt"] for s in samples] == [r["text"] for r in manifest]
    first = samples[0]
    image = first.get("png") or first.get("jpg")
    assert image.size[0] > 0 and first["json"]["sample_id"] == manifest[0]["sample_id"]


def test_all_selection_is_every_ok_candidate_and_named_selections_resolve(scored):
    from rs_pipeline.core.selection.manifest import load_selection

    cfg, store, lineage, (v0, _) = scored
    run_curated_subsets(cfg, v0, store, lineage, "r1")
    everything = load_selection(store, "all@100")
    top = load_selection(store, f"{v0}@30")
    assert set(top.table.column("caption_id").to_pylist()) < set(
        everything.table.column("caption_id").to_pylist()
    )
    ok = lineage.query("SELECT count(*) AS n FROM captions WHERE status = 'ok'")
    assert len(everything) == ok.column("n")[0].as_py()
    assert everything.digest == load_selection(store, "all@100").digest != top.digest
    with pytest.raises(FileNotFoundError, match="materialize curated_subsets"):
        load_selection(store, f"{v0}@12")


def test_image_means_average_each_images_candidates():
    from rs_pipeline.core.selection.stage import image_means

    rows = [{"sample_id": "a", "score": 3.0}, {"sample_id": "a", "score": 1.0},
            {"sample_id": "b", "score": -2.0}]  # fmt: skip
    assert image_means(rows) == {"a": 2.0, "b": -2.0}


def test_per_image_normalisation_ranks_captions_against_their_own_image(scored):
    from collections import defaultdict

    cfg, store, lineage, (v0, _) = scored
    cfg = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"score_norm": "per_image"})}
    )
    rep = run_curated_subsets(cfg, v0, store, lineage, "r1")
    kept = pq.read_table(rep.urls[f"{v0}@30"]).to_pylist()
    raw = store.read_table(f"pair_scores/version={v0}/batch=b1/scores.parquet").to_pylist()
    by_image = defaultdict(list)
    for r in raw:
        by_image[r["sample_id"]].append(r["score"])
    raw_score = {r["caption_id"]: r["score"] for r in raw}
    for k in kept:
        mean = sum(by_image[k["sample_id"]]) / len(by_image[k["sample_id"]])
        assert k["score"] == pytest.approx(raw_score[k["caption_id"]] - mean)
        assert k["reason"].endswith("(score centred on its image's mean)")
    assert rep.kept[f"{v0}@30"] == math.ceil(rep.pool * 0.3)  # still exactly the top 30%
