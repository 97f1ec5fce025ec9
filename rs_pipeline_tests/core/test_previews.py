"""Previews read back for asset metadata: per-stage training curves, per-seed rows, and the
first rows of what the data engine wrote."""

import pytest

from rs_pipeline.core import previews
from rs_pipeline.core.evaluation.tables import markdown_records
from rs_pipeline_tests.core.pairs.test_stage import engine
from rs_pipeline_tests.factories import write_config


def test_training_curves_continue_the_step_count_across_stages():
    history = [
        {"stage": "init", "step": 0, "loss": None, "val_accuracy": 0.5},
        {"stage": "head", "step": 10, "loss": 0.7, "val_accuracy": 0.6},
        {"stage": "head", "step": 20, "loss": 0.6, "val_accuracy": 0.65},
        {"stage": "vision", "step": 10, "loss": 0.5, "val_accuracy": 0.7},
    ]
    panels = previews.training_curves(history)
    assert panels["held-out accuracy"] == {
        "init": [(0, 0.5)],
        "head": [(10, 0.6), (20, 0.65)],
        "vision": [(30, 0.7)],
    }
    assert panels["loss"] == {"head": [(10, 0.7), (20, 0.6)], "vision": [(30, 0.5)]}
    assert previews.training_curves([]) == {}


def test_markdown_records_escape_pipes_and_line_breaks_in_cells():
    text = markdown_records([{"caption": "a | b\nc"}])
    assert text.splitlines() == ["| caption |", "|---|", "| a \\| b c |"]


@pytest.fixture(scope="module")
def lineage(tmp_path_factory):
    source = {"kind": "synthrs", "name": "synthrs", "count": 8, "size": 64, "seed": 3}
    _, db, *_ = engine(write_config(tmp_path_factory.mktemp("pv"), sources=[source]))
    return db


def test_caption_head_shows_every_candidate_of_the_first_images(lineage):
    rows = previews.caption_head(lineage, ["b1"], images=2)
    assert len({r["sample_id"] for r in rows}) == 2
    everything = lineage.query("SELECT sample_id FROM captions").column(0).to_pylist()
    first_two = sorted(set(everything))[:2]
    assert len(rows) == sum(s in first_two for s in everything)
    assert previews.caption_head(lineage, ["other"]) == []


def test_pair_head_shows_each_kind_before_a_second_of_any(lineage):
    rows = previews.pair_head(lineage, ["b1"], k=8)
    kinds = lineage.query("SELECT DISTINCT kind FROM pairs").column(0).to_pylist()
    assert sorted(r["kind"] for r in rows[: len(kinds)]) == sorted(kinds)
    assert 0 < len(rows) <= 8


def test_a_contact_sheet_shows_the_first_images_side_by_side(tmp_path):
    import io

    from PIL import Image

    from rs_pipeline.core.artifacts import ArtifactStore
    from rs_pipeline.core.config import load_config
    from rs_pipeline.core.ingest.stage import run_ingest
    from rs_pipeline.core.lineage import LineageStore

    source = {"kind": "synthrs", "name": "synthrs", "count": 5, "size": 64, "seed": 3}
    cfg = load_config(write_config(tmp_path, sources=[source]))
    store = ArtifactStore(cfg.storage.root)
    run_ingest(cfg, "b1", store, LineageStore(cfg.storage.lineage_db), "r1")
    sheet = Image.open(io.BytesIO(previews.contact_sheet(store, "b1", k=8, side=32)))
    assert sheet.size == (5 * 34, 32)  # five images, each 32 px and a 2 px gap
