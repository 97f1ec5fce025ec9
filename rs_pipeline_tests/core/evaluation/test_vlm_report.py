"""The VLM half of the report: VQA table, best-of-N lines and plot, families, lineage reads."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.evaluation import plots
from rs_pipeline.core.evaluation.bon_summary import POOLED, BonResult, BonTable, summarize_bon
from rs_pipeline.core.evaluation.report import (
    BON_HEADING,
    BON_PNG,
    TRAINED_HEADING,
    VQA_HEADING,
    Column,
    ReportTable,
    TrainedOn,
    bon_records,
    summarize,
    table_records,
    write_report,
)
from rs_pipeline.core.evaluation.results import EvalResult, results_table
from rs_pipeline.core.evaluation.stage import (
    current_bon_results,
    current_results,
    current_vqa_results,
    run_evaluation_report,
    trained_on,
)
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import parse_selection
from rs_pipeline.core.records import BON_SCHEMA, CHECKPOINT_SCHEMA, VLM_CHECKPOINT_SCHEMA

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
VLM_SELECTIONS = ("clip-head-3f9@60", "clipscore-a2b@60", "all@100")
STRATEGY_SHIFT = {"scorer": 0.2, "clipscore": 0.1, "majority": 0.05, "random": 0.0}


def result(selection, seed, benchmark, metric, value):
    _, scorer, percent = parse_selection(selection)
    return EvalResult(selection, scorer, percent, seed, benchmark, metric, value, 40, 0,
                      f"file:///ckpt/{selection}/{seed}")  # fmt: skip


def clip_rows(seeds=(0, 1, 2)):
    rng = random.Random(7)
    return [result(sel, seed, "rsscn7", m, rng.random())
            for sel in ("clip-head-3f9@30", "clipscore-a2b@30", "all@100")
            for seed in seeds for m in ("top1", "top5")]  # fmt: skip


def vqa_rows(seeds=(0, 1)):
    """VQA accuracies, one on a CLIP benchmark's own name: only the metric tells them apart."""
    rng = random.Random(11)
    return [result(sel, seed, bench, m, rng.random())
            for sel in VLM_SELECTIONS for seed in seeds
            for bench, metrics in (("synthrs-vqa", ("vqa_count", "vqa_all")),
                                   ("rsscn7", ("vqa_scene", "vqa_all")))
            for m in metrics]  # fmt: skip


def bon(selection, seed, strategy, n, accuracy, benchmark="synthrs-vqa"):
    return BonResult(selection, seed, benchmark, "clip-head-3f9", strategy, n, accuracy, 50,
                     f"file:///vlm/{selection}/{seed}")  # fmt: skip


def bon_rows(selections=VLM_SELECTIONS[:2], seeds=(0, 1), ns=(1, 2, 4)):
    """Accuracy rising with N for every strategy but random; greedy at 0.4 + seed/100."""
    out = []
    for k, sel in enumerate(selections):
        for seed in seeds:
            base = 0.4 + seed / 100 + k / 50
            out.append(bon(sel, seed, "greedy", 1, base))
            out += [bon(sel, seed, s, n, base + shift * n / max(ns))
                    for n in ns for s, shift in STRATEGY_SHIFT.items()]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    store = ArtifactStore(str(tmp_path_factory.mktemp("root")))
    trained = [TrainedOn("CLIP", "all@100", (0, 1, 2)), TrainedOn("VLM", "all@100", (0, 1))]
    results = clip_rows() + vqa_rows()
    paths = write_report(store, "r", results, (), "Demo", WHEN, bon=bon_rows(),
                         trained_on=trained)  # fmt: skip
    md = store.fs.cat(store.path("r", "report.md")).decode()
    page = store.fs.cat(store.path("r", "report.html")).decode()
    doc = json.loads(store.fs.cat(store.path("r", "report.json")))
    return store, paths, md, page, doc


def test_a_report_with_clip_vqa_and_bon_rows_shows_every_section(written):
    _, _, md, page, _ = written
    for heading in ("Headline", TRAINED_HEADING, VQA_HEADING, BON_HEADING):
        assert f"## {heading}\n" in md and f"<h2>{heading}</h2>" in page
    assert (
        md.index("## All metrics") < md.index(f"## {VQA_HEADING}") < md.index(f"## {BON_HEADING}")
    )
    assert "| VLM | all@100 | 0, 1 |" in md


def test_the_clip_table_keeps_only_clip_metrics(written):
    _, _, md, _, doc = written
    clip_part = md[: md.index(f"## {TRAINED_HEADING}")]
    assert "vqa_" not in clip_part
    table = ReportTable.from_dict(doc["table"])
    assert table == summarize(clip_rows())
    assert {c.metric for c in table.columns} == {"top1", "top5"}


def test_vqa_table_has_vqa_columns_per_benchmark_and_paired_differences(written):
    _, _, md, _, doc = written
    vqa = ReportTable.from_dict(doc["vqa"]["table"])
    assert vqa == summarize(vqa_rows())
    assert [c.label for c in vqa.columns] == [
        "synthrs-vqa vqa_all", "synthrs-vqa vqa_count", "rsscn7 vqa_all", "rsscn7 vqa_scene"
    ]  # fmt: skip
    assert vqa.selections == ["clip-head-3f9@60", "clipscore-a2b@60", "all@100"]
    record = next(r for r in table_records(vqa, vqa.columns) if r["selection"] == "all@100")
    assert f"| all@100 | 2 | {' | '.join(str(record[c.label]) for c in vqa.columns)} |" in md
    diffs = {(d["selection"], d["reference"], d["metric"]) for d in doc["vqa"]["paired"]}
    assert ("clip-head-3f9@60", "all@100", "vqa_all") in diffs
    assert ("clip-head-3f9@60", "clipscore-a2b@60", "vqa_all") in diffs


def test_bon_table_values_match_the_rows(written):
    _, _, md, _, doc = written
    rows = bon_rows()
    table = BonTable.from_dict(doc["bon"]["table"])
    assert table == summarize_bon(rows)
    assert [BonResult(**r) for r in doc["bon"]["results"]] == rows
    records = {(r["selection"], r["strategy"]): r for r in bon_records(table)}
    mine = [r.accuracy for r in rows
            if (r.selection, r.strategy, r.n) == ("clip-head-3f9@60", "scorer", 4)]  # fmt: skip
    line = next(x for x in table.lines
                if (x.selection, x.strategy) == ("clip-head-3f9@60", "scorer"))  # fmt: skip
    assert line.cell(4).mean == pytest.approx(sum(mine) / len(mine))
    assert records[("clip-head-3f9@60", "scorer")]["N=4"] == line.cell(4).format()
    assert records[("clip-head-3f9@60", "greedy")]["N=2"] == "—"  # greedy is n=1 only
    assert records[(POOLED, "scorer")]["checkpoints"] == 4  # 2 selections x 2 seeds
    assert records[(POOLED, "scorer")]["scorer_version"] == "clip-head-3f9"
    head = "| benchmark | selection | strategy | scorer_version | checkpoints | questions |"
    assert f"{head} N=1 | N=2 | N=4 |" in md


def test_the_bon_plot_is_written_and_shown_with_its_table(written):
    store, paths, md, page, doc = written
    png = store.fs.cat(store.path("r", BON_PNG))
    Image.open(io.BytesIO(png)).load()
    assert paths.plots[BON_PNG] == store.url("r", BON_PNG) == doc["files"][BON_PNG]
    assert md.index(f"## {BON_HEADING}") < md.index(f"]({BON_PNG})")
    assert f'<img src="{BON_PNG}"' in page


def test_a_report_without_vlm_rows_is_unchanged(tmp_path, written):
    store = ArtifactStore(str(tmp_path))
    write_report(store, "r", clip_rows(), (), "Demo", WHEN)
    md = store.fs.cat(store.path("r", "report.md")).decode()
    for word in ("VQA", "Best-of-N", TRAINED_HEADING, BON_PNG):
        assert word not in md
    doc = json.loads(store.fs.cat(store.path("r", "report.json")))
    assert (doc["vqa"], doc["bon"], doc["trained_on"]) == (None, None, [])
    assert not store.exists("r", BON_PNG)
    # The CLIP sections of a report with VLM rows read exactly as the CLIP-only report.
    assert written[2].startswith(md.rstrip("\n") + "\n\n## ")


def test_rewriting_without_bon_rows_removes_a_stale_bon_plot(tmp_path):
    store = ArtifactStore(str(tmp_path))
    write_report(store, "r", clip_rows(), generated_at=WHEN, bon=bon_rows())
    assert store.exists("r", BON_PNG)
    paths = write_report(store, "r", clip_rows(), generated_at=WHEN)
    assert not store.exists("r", BON_PNG) and BON_PNG not in paths.plots


def test_bon_summary_pools_every_selection_and_keeps_each_selection_apart():
    table = summarize_bon(bon_rows())
    assert table.ns == (1, 2, 4) and table.benchmarks == ("synthrs-vqa",)
    assert table.selections == ("clip-head-3f9@60", "clipscore-a2b@60")
    assert [x.strategy for x in table.pooled("synthrs-vqa")] == [
        "greedy", "scorer", "clipscore", "majority", "random"
    ]  # fmt: skip
    greedy = table.pooled("synthrs-vqa")[0]
    assert [c.n for c in greedy.cells] == [1]
    assert greedy.cells[0].values == pytest.approx((0.4, 0.41, 0.42, 0.43))


def test_bon_records_leave_out_pooled_lines_that_pool_one_selection():
    table = summarize_bon(bon_rows(selections=("all@100",)))
    assert {r["selection"] for r in bon_records(table)} == {"all@100"}


def test_bon_summary_rejects_duplicates_and_empty_input():
    with pytest.raises(ValueError, match="duplicate best-of-N"):
        summarize_bon([bon("all@100", 0, "greedy", 1, 0.4)] * 2)
    with pytest.raises(ValueError, match="materialize bon_eval"):
        summarize_bon([])


def test_bon_plot_has_one_panel_per_benchmark_and_draws_greedy():
    one = summarize_bon(bon_rows())
    two = summarize_bon(bon_rows() + [bon("all@100", 0, "scorer", 2, 0.5, "rsscn7")])
    img_one = Image.open(io.BytesIO(plots.bon_accuracy_vs_n(one)))
    img_two = Image.open(io.BytesIO(plots.bon_accuracy_vs_n(two)))
    assert img_two.width == 2 * img_one.width and img_two.height == img_one.height
    no_greedy = summarize_bon([r for r in bon_rows() if r.strategy != "greedy"])
    assert plots.bon_accuracy_vs_n(no_greedy) != plots.bon_accuracy_vs_n(one)
    assert plots.bon_accuracy_vs_n(one) == plots.bon_accuracy_vs_n(one)


# ---- reading lineage ----


def config(tmp_path, vlm_enabled=True):
    return config_from_dict({
        "storage": {"root": str(tmp_path / "root"), "lineage_db": str(tmp_path / "l.duckdb")},
        "evaluation": {"benchmarks": [{"name": "rsscn7", "kind": "synthrs"}]},
        "selection": {"ratios": [30, 60]},
        "vlm": {"enabled": vlm_enabled, "seeds": [0, 1], "bon": {"n": [1, 2, 4]}},
    })  # fmt: skip


def checkpoint_rows(selections, seeds, schema):
    rows = [{"selection": s, "seed": seed, "manifest_digest": "d", "base_model": "tiny",
             "adapter": False, "train_examples": 1, "train_pairs": 1, "train_images": 1,
             "steps": 1, "final_loss": 0.1, "url": f"file:///{s}/{seed}"}
            for s in selections for seed in seeds]  # fmt: skip
    return pa.Table.from_pylist([{k: r[k] for k in schema.names} for r in rows], schema=schema)


@pytest.fixture
def lineage(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    tag = {"partition_key": "p", "run_id": "r"}
    stale = [bon("all@100", 0, "scorer", 8, 0.9), bon("all@100", 5, "scorer", 2, 0.9)]
    tables = {
        "eval_results": results_table(clip_rows() + vqa_rows(seeds=(0, 1, 7))),
        "bon_results": pa.Table.from_pylist(
            [r.row() for r in bon_rows() + stale], schema=BON_SCHEMA
        ),  # fmt: skip
        "checkpoints": checkpoint_rows(
            ["clip-head-3f9@30", "all@100"], (0, 1, 2), CHECKPOINT_SCHEMA
        ),  # fmt: skip
        "vlm_checkpoints": checkpoint_rows(VLM_SELECTIONS, (0, 1, 9), VLM_CHECKPOINT_SCHEMA),
    }
    for name, table in tables.items():
        store.replace_partition(name, table, asset=name, **tag)
    return store


def test_lineage_reads_split_clip_from_vqa_rows_at_each_familys_seeds(tmp_path, lineage):
    cfg = config(tmp_path)
    assert current_results(cfg, lineage) == sorted(
        clip_rows(), key=lambda r: (r.selection, r.seed, r.benchmark, r.metric)
    )
    vqa = current_vqa_results(cfg, lineage)
    assert {r.seed for r in vqa} == {0, 1} and all(r.metric.startswith("vqa_") for r in vqa)
    assert sorted(current_bon_results(cfg, lineage), key=repr) == sorted(bon_rows(), key=repr)
    assert trained_on(cfg, lineage) == [
        TrainedOn("CLIP", "all@100", (0, 1, 2)),
        TrainedOn("CLIP", "clip-head-3f9@30", (0, 1, 2)),
        *(TrainedOn("VLM", s, (0, 1)) for s in sorted(VLM_SELECTIONS)),
    ]


def test_run_evaluation_report_writes_the_vlm_sections_from_lineage(tmp_path, lineage):
    cfg = config(tmp_path)
    rep = run_evaluation_report(cfg, ArtifactStore(cfg.storage.root), lineage)
    md = (tmp_path / "root" / "evaluation_report" / "report.md").read_text()
    assert f"## {VQA_HEADING}" in md and f"## {BON_HEADING}" in md and TRAINED_HEADING in md
    assert rep.vqa is not None and Column("synthrs-vqa", "vqa_all") in rep.vqa.columns
    assert rep.bon == summarize_bon(current_bon_results(cfg, lineage))
    assert all(not c.metric.startswith("vqa_") for c in rep.table.columns)
    assert BON_PNG in rep.paths.plots


def test_with_the_vlm_off_the_report_reads_no_vlm_rows(tmp_path, lineage):
    cfg = config(tmp_path, vlm_enabled=False)
    rep = run_evaluation_report(cfg, ArtifactStore(cfg.storage.root), lineage)
    md = (tmp_path / "root" / "evaluation_report" / "report.md").read_text()
    assert rep.vqa is None and rep.bon is None
    assert "VQA" not in md and "Best-of-N" not in md and TRAINED_HEADING not in md
