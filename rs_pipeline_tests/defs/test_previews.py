"""What a reviewer sees in each asset's materialization metadata: preview tables and plots.

The assets after the batch ones are checked on the whole graph that test_run_command runs.
"""

import json

import dagster as dg

from rs_pipeline.defs.graph import BATCH_ASSETS
from rs_pipeline.defs.previews import (
    bon_previews,
    checkpoint_previews,
    md_table,
    png,
    score_model_previews,
)
from rs_pipeline.defs.resources import build_resources
from rs_pipeline_tests.factories import encode, noise_rgb, write_config

PNG_URL = "data:image/png;base64,iVBORw0KGgo"  # a base64 PNG begins so


def _md(value) -> str:
    assert isinstance(value, dg.MarkdownMetadataValue)
    return value.value


def test_batch_assets_show_previews_and_import_problems_by_reason(tmp_path):
    folder = tmp_path / "user" / "forest"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.png").write_bytes(encode(noise_rgb(seed=i), "PNG"))
    (folder / "empty.png").write_bytes(b"")  # quarantined: zero_byte
    prefs = tmp_path / "prefs.jsonl"
    good = {"chosen": "dense forest", "rejected": "a beach", "image_path": "forest/0.png"}
    missing = {"chosen": "x", "rejected": "y", "image_path": "forest/missing.png"}
    prefs.write_text(f"{json.dumps(good)}\n{{not json\n{json.dumps(missing)}\n")
    config = write_config(
        tmp_path,
        sources=[{"kind": "imagefolder", "name": "user", "path": str(tmp_path / "user")}],
        pairs={"import_files": [str(prefs)], "import_image_root": str(tmp_path / "user")},
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batch", ["b1"])
        result = dg.materialize(
            BATCH_ASSETS, partition_key="b1", resources=build_resources(config), instance=instance
        )
    assert result.success
    md = {a: result.asset_materializations_for_node(a)[0].metadata for a in
          ("rs_images", "caption_candidates", "preference_pairs")}  # fmt: skip
    assert _md(md["rs_images"]["thumbnails"]).startswith("![first images of b1](" + PNG_URL)
    assert "| sample_id | source | label |" in _md(md["rs_images"]["preview_table"])
    assert "zero_byte" in _md(md["rs_images"]["quarantine_preview"])
    captions = _md(md["caption_candidates"]["preview"])
    assert "| sample_id | captioner_id |" in captions and "template/v1" in captions
    assert "| captioner | candidates |" in _md(md["caption_candidates"]["by_captioner"])
    pairs = md["preference_pairs"]
    assert "imported" in _md(pairs["preview"])
    assert pairs["import_problems_by_reason"].value == {"image_missing": 1, "malformed_json": 1}
    problems = _md(pairs["import_problems"])
    assert "| 2 | malformed_json |" in problems and "| 3 | image_missing |" in problems


def test_markdown_previews_cut_long_text_and_mark_missing_cells():
    value = md_table([{"text": "x" * 200, "score": 0.123456}, {"text": "a|b", "extra": None}])
    lines = value.value.splitlines()
    assert lines[0] == "| text | score | extra |"
    assert lines[2] == f"| {'x' * 79}… | 0.1235 | — |"
    assert lines[3] == "| a\\|b | — | — |"
    assert md_table([], caption="First problems").value == "First problems\n\n_none_"


def test_a_png_preview_embeds_the_image_as_a_data_url():
    assert (
        png(b"\x89PNG\r\n\x1a\n", alt="plot").value == "![plot](data:image/png;base64,iVBORw0KGgo=)"
    )


def test_training_previews_show_a_curve_per_stage_and_a_row_per_seed():
    from rs_pipeline.core.evaluation.results import EvalResult
    from rs_pipeline.core.finetune.stage import SeedRun

    history = [
        {"stage": "init", "step": 0, "loss": None, "val_accuracy": 0.5},
        {"stage": "head", "step": 10, "loss": 0.7, "val_accuracy": 0.6},
        {"stage": "vision", "step": 10, "loss": 0.6, "val_accuracy": 0.7},
    ]
    md = score_model_previews(history, {"val_pairwise_accuracy": 0.7, "required": 0.65})
    assert _md(md["training_curve"]).startswith("![training curve](" + PNG_URL)
    assert "| val_pairwise_accuracy | 0.7000 |" in _md(md["val_metrics"])
    runs = [SeedRun(seed=s, url=f"ckpt{s}", final_loss=1.0 + s, reused=s == 1) for s in (0, 1)]
    results = [EvalResult("s@30", "s", 30.0, s, "b", "top1", 0.25 * s, 10, 0, f"ckpt{s}")
               for s in (0, 1)]  # fmt: skip
    table = checkpoint_previews(runs, results)["per_seed"]
    assert [c.name for c in table.schema.columns] == ["seed", "final_loss", "reused", "b top1"]
    assert [r.data["b top1"] for r in table.records] == ["0.0000", "0.2500"]


def test_bon_preview_is_a_strategy_by_n_table():
    md = bon_previews({"greedy": {1: 0.3}, "scorer": {1: 0.3, 4: 0.5}})
    lines = _md(md["accuracy_table"]).splitlines()
    assert lines[0] == "| strategy | N=1 | N=4 |"
    assert lines[2:] == ["| greedy | 0.3000 | — |", "| scorer | 0.3000 | 0.5000 |"]
