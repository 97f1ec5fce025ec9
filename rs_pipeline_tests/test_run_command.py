"""`rs-pipeline run --config FILE`: the whole graph on the tiny preset, report and metadata."""

import json
from pathlib import Path

import dagster as dg
import pytest

from rs_pipeline import launch
from rs_pipeline.cli import main
from rs_pipeline.core.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    from rs_pipeline_tests.factories import write_config

    # Two cheap scorers: the learned ones are trained and checked in core/scoring's tests.
    scorers = [
        {"name": "random", "backend": "random"},
        {"name": "coin", "backend": "random", "seed": 1},
    ]
    # The VLM on the 30% selections and all@100, a few steps: the path, not the result.
    vlm = {
        "enabled": True,
        "ratios": [30],
        "steps": 3,
        "batch_size": 4,
        "seeds": [0],
        "vqa_count": 3,
        "max_new_tokens": 3,
        "bon": {"n": [1, 2], "max_questions": 4, "clip_scorer": None},
    }
    config = write_config(
        tmp_path_factory.mktemp("run"),
        scoring={"scorers": scorers, "current": "random"},
        vlm=vlm,
    )
    with dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as mp:
        mp.setattr(launch, "_instance", lambda: instance)
        out = _capture(lambda: main(["run", "--config", config, "--batch", "b1"]))
        yield config, instance, out


def _capture(fn):
    import contextlib
    import io

    buf = io.StringIO()  # stdout and stderr (where Dagster's console log goes) together
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = fn()
    return rc, buf.getvalue()


def test_run_prints_one_progress_line_per_step_and_no_dagster_debug_events(ran):
    config, _, (rc, out) = ran
    total = launch.step_count(load_config(config), ["b1"])
    progress = [line for line in out.splitlines() if line.startswith("[") and "ETA " in line]
    assert [int(line[1:].split("/")[0]) for line in progress] == list(range(1, total + 1))
    assert progress[-1].startswith(f"[{total}/{total}] evaluation_report  ok in ")
    assert " - DEBUG - " not in out and "STEP_START" not in out


def test_run_prints_the_headline_table_and_where_the_report_is(ran):
    config, _, (rc, out) = ran
    cfg = load_config(config)
    assert rc == 0, out
    assert "| selection | seeds |" in out and "all@100" in out and " ± " in out
    report = Path(cfg.storage.root) / "evaluation_report" / "report.json"
    assert str(report.parent / "report.html") in out
    doc = json.loads(report.read_text())
    selections = set(doc["selections"])
    assert "all@100" in selections and len(selections) == 1 + len(cfg.scoring.scorers)
    assert {r["seed"] for r in doc["results"]} == set(cfg.finetune.seeds)


def test_report_is_attached_to_dagster_as_a_table_and_an_image(ran):
    _, instance, _ = ran
    event = instance.get_latest_materialization_event(dg.AssetKey("evaluation_report"))
    md = event.asset_materialization.metadata
    assert isinstance(md["headline"], dg.TableMetadataValue)
    rows = md["headline"].records
    assert {r.data["selection"] for r in rows} >= {"all@100"}
    assert md["plot"].value.startswith("![accuracy vs ratio](data:image/png;base64,")


def test_every_selection_checkpoint_is_a_dagster_partition_with_lineage(ran):
    config, instance, _ = ran
    keys = instance.get_dynamic_partitions("selection")
    assert "all@100" in keys and len(keys) == 1 + len(load_config(config).scoring.scorers)
    mats = instance.fetch_materializations(dg.AssetKey("clip_checkpoints"), limit=100)
    assert {m.asset_materialization.partition for m in mats.records} == set(keys)


def test_vlm_checkpoints_and_bon_eval_are_materialized_for_the_vlm_selections(ran):
    config, instance, _ = ran
    keys = set(instance.get_dynamic_partitions("selection"))
    for asset in ("vlm_checkpoints", "bon_eval"):
        mats = instance.fetch_materializations(dg.AssetKey(asset), limit=100)
        assert {m.asset_materialization.partition for m in mats.records} == keys  # all at 30%
    event = instance.get_latest_materialization_event(dg.AssetKey("bon_eval"))
    assert event.asset_materialization.metadata["scorer_version"].value.startswith("random-")
    cfg = load_config(config)
    doc = json.loads((Path(cfg.storage.root) / "evaluation_report" / "report.json").read_text())
    assert doc["vqa"] and doc["bon"]


def test_every_asset_shows_its_preview_tables_and_plots(ran):
    _, instance, _ = ran

    def md(asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    png = "](data:image/png;base64,iVBORw0KGgo"  # a base64 PNG embedded in Markdown
    shown = {
        "rs_images": ("thumbnails", "preview_table", "quarantine_preview"),
        "caption_candidates": ("preview", "by_captioner"),
        "preference_pairs": ("preview", "import_problems_by_reason", "import_problems"),
        "pair_scores": ("scorer_version", "score_histogram", "extremes"),
        "curated_subsets": ("scorer_version", "selection_table", "preview", "score_histograms"),
        "bon_eval": ("selection", "scorer_version", "accuracy_table"),
        "evaluation_report": ("plot", "score_histograms", "bon_plot", "headline"),
    }
    for asset, keys in shown.items():
        assert set(keys) <= set(md(asset)), asset
    plots = {
        "rs_images": "thumbnails",
        "pair_scores": "score_histogram",
        "curated_subsets": "score_histograms",
        "evaluation_report": "bon_plot",
    }
    for asset, key in plots.items():
        assert png in md(asset)[key], (asset, key)
    assert "| selection | pairs | images | cut_score |" in md("curated_subsets")["selection_table"]
    assert "| sample_id | score | captioner_id |" in md("pair_scores")["extremes"]
    assert md("bon_eval")["accuracy_table"].startswith("| strategy | N=1 |")
