"""Captions that came with the data become candidates, named by their source."""

import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.captions.provided import ProvidedCaptioner
from rs_pipeline.core.captions.registry import build_captioners
from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.config import CaptionsConfig, config_from_dict
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline_tests.factories import encode, noise_rgb


def view(captions, sid="s1", source="survey"):
    return SampleView(sid, noise_rgb(8), captions=tuple(captions), source=source)


def test_each_provided_caption_is_a_candidate_named_by_its_source():
    cands = ProvidedCaptioner().caption([view(["a lake", "blue water"]), view(["roofs"], "s2")])
    assert [(c.sample_id, c.captioner_id, c.text) for c in cands] == [
        ("s1", "provided:survey/v1", "a lake"),
        ("s1", "provided:survey/v1", "blue water"),
        ("s2", "provided:survey/v1", "roofs"),
    ]


def test_provided_captions_are_stripped_and_empty_or_repeated_ones_skipped_in_order():
    cands = ProvidedCaptioner().caption([view(["  b road ", "", "   ", "a field", "b road"])])
    assert [c.text for c in cands] == ["b road", "a field"]


def test_images_without_captions_get_none_and_no_source_falls_back_to_unknown():
    cap = ProvidedCaptioner()
    assert cap.caption([view([]), SampleView("s3", noise_rgb(8))]) == []
    (cand,) = cap.caption([view(["a port"], source=None)])
    assert cand.captioner_id == "provided:unknown/v1"


def test_max_per_image_keeps_the_first_distinct_captions():
    cands = ProvidedCaptioner(max_per_image=2).caption([view(["a", "a", "b", "c"])])
    assert [c.text for c in cands] == ["a", "b"]
    with pytest.raises(ValueError, match="max_per_image"):
        ProvidedCaptioner(max_per_image=0)


def test_provided_captioner_comes_first_and_can_be_disabled():
    ids = [c.id for c in build_captioners(CaptionsConfig())]
    assert ids[:2] == ["provided/v1", "template/v1"]
    off = CaptionsConfig.model_validate({"provided": {"enabled": False}})
    assert "provided/v1" not in [c.id for c in build_captioners(off)]


def test_clip_style_manifest_titles_become_provided_candidates_end_to_end(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(2):
        (tmp_path / "img" / f"{i}.png").write_bytes(encode(noise_rgb(seed=i), "PNG"))
    (tmp_path / "train.csv").write_text(
        "filename,title\nimg/0.png,a river between fields\nimg/1.png,  dense houses \n"
    )
    cfg = config_from_dict(
        {
            "preset": "tiny",
            "sources": [
                {
                    "kind": "manifest",
                    "name": "clip_csv",
                    "path": str(tmp_path / "train.csv"),
                    "columns": {"path": "filename", "captions": "title"},
                }
            ],
            "storage": {"root": str(tmp_path / "out"), "lineage_db": str(tmp_path / "l.duckdb")},
        }
    )
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    assert run_ingest(cfg, "b1", store, lineage, "r1").counts.unique == 2
    report = run_captions(cfg, "b1", store, lineage, "r1")
    rows = pq.read_table(report.url).to_pylist()
    provided = sorted(r["text"] for r in rows if r["captioner_id"] == "provided:clip_csv/v1")
    assert provided == ["a river between fields", "dense houses"]
    assert report.by_captioner["provided:clip_csv/v1"] == 2
