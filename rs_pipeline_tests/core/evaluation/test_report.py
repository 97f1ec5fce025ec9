import json
import math
import posixpath
import random
import uuid
from datetime import UTC, datetime

import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.evaluation.report import (
    Column,
    ReportTable,
    ScoreSplit,
    markdown_table,
    summarize,
    table_records,
    write_report,
)
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.names import parse_selection

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def result(selection, seed, benchmark, metric, value, n_images=40, excluded=0):
    _, scorer, percent = parse_selection(selection)
    return EvalResult(selection, scorer, percent, seed, benchmark, metric, value, n_images,
                      excluded, f"file:///ckpt/{selection}/{seed}")  # fmt: skip


def grid(seeds=(0, 1, 2)):
    """Every selection x seed on a classification and a retrieval benchmark, values seeded."""
    rng = random.Random(7)
    out = []
    for sel in ("all@100", "random-9c1@30", "clip-head-3f9@50", "clipscore-a2b@30",
                "clip-head-3f9@30"):  # fmt: skip
        for seed in seeds:
            out += [result(sel, seed, "rsscn7", m, rng.random(), 90, 4) for m in ("top5", "top1")]
            for m in ("i2t_R@10", "mean_recall", "t2i_R@1", "i2t_R@1", "t2i_R@5"):
                out.append(result(sel, seed, "captions", m, rng.random(), 30, 1))
    return out


def splits():
    rng = random.Random(3)
    return [ScoreSplit.from_scores(sel, [rng.gauss(0, 1) for _ in range(200)],
                                   [i % 3 == 0 for i in range(200)])
            for sel in ("clip-head-3f9@30", "clipscore-a2b@30")]  # fmt: skip


def test_cell_mean_and_std_match_a_naive_reference():
    values = {0: 0.61, 1: 0.58, 2: 0.66, 3: 0.64}
    table = summarize(
        [result("clip-head-3f9@30", s, "rsscn7", "top1", v) for s, v in values.items()]
    )
    cell = table.row("clip-head-3f9@30").cell(Column("rsscn7", "top1"))
    mean = sum(values.values()) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in values.values()) / (4 - 1))  # sample std
    assert cell.mean == pytest.approx(mean) and cell.std == pytest.approx(std)
    assert cell.seeds == (0, 1, 2, 3) and cell.values == (0.61, 0.58, 0.66, 0.64)


def test_single_seed_has_zero_std():
    cell = summarize([result("all@100", 5, "b", "top1", 0.4)]).rows[0].cell(Column("b", "top1"))
    assert (cell.mean, cell.std, cell.seeds) == (0.4, 0.0, (5,))


def test_every_cell_aggregates_its_own_selection_and_metric():
    results = grid()
    table = summarize(list(reversed(results)))
    for r in table.rows:
        for c in r.cells:
            key = (r.selection, *c.column)
            mine = [x.value for x in results if (x.selection, x.benchmark, x.metric) == key]
            assert c.mean == pytest.approx(sum(mine) / len(mine))


def test_rows_put_learned_scorers_first_then_baselines_then_all():
    assert summarize(grid()).selections == [
        "clip-head-3f9@30", "clip-head-3f9@50", "clipscore-a2b@30", "random-9c1@30", "all@100"
    ]  # fmt: skip


def test_columns_follow_benchmark_order_and_canonical_metric_order():
    table = summarize(grid())
    assert table.benchmarks == ("rsscn7", "captions")
    assert [c.metric for c in table.columns] == [
        "top1", "top5", "mean_recall", "t2i_R@1", "t2i_R@5", "i2t_R@1", "i2t_R@10"
    ]  # fmt: skip
    assert [c.label for c in table.headline_columns] == [
        "rsscn7 top1", "rsscn7 top5", "captions mean_recall", "captions t2i_R@1",
        "captions i2t_R@1",
    ]  # fmt: skip
    assert table.primary_columns == (Column("rsscn7", "top1"), Column("captions", "mean_recall"))


def test_counts_report_images_evaluated_and_excluded_per_benchmark():
    row = summarize(grid()).row("all@100")
    assert [(k.benchmark, k.n_images, k.excluded) for k in row.counts] == [
        ("rsscn7", 90, 4), ("captions", 30, 1)
    ]  # fmt: skip


def test_empty_results_fail_with_what_to_materialize():
    with pytest.raises(ValueError, match="no evaluation results.*clip_checkpoints"):
        summarize([])


@pytest.mark.parametrize(
    "bad, message",
    [(result("all@100", 0, "b", "top1", 0.5), "duplicate"),
     (result("all@100", 1, "b", "top1", float("nan")), "non-finite")],
)  # fmt: skip
def test_duplicate_or_non_finite_results_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        summarize([result("all@100", 0, "b", "top1", 0.4), bad])


def test_markdown_table_shows_mean_plus_minus_std_per_selection():
    results = [result("all@100", s, "b", "top1", v) for s, v in ((0, 0.5), (1, 0.7))]
    results.append(result("random-1@30", 0, "b", "top1", 0.25))
    lines = markdown_table(summarize(results)).splitlines()
    assert lines[0] == "| selection | seeds | b top1 |"
    assert lines[2] == "| random-1@30 | 1 | 0.250 ± 0.000 |"
    assert lines[3] == f"| all@100 | 2 | 0.600 ± {math.sqrt(0.02):.3f} |"  # std of .5,.7
    assert len(lines) == 4


def test_missing_cells_show_a_dash_and_cells_short_of_seeds_show_n():
    results = [result("all@100", s, "b", m, 0.5) for s in (0, 1, 2) for m in ("top1", "top5")]
    results = [r for r in results if (r.seed, r.metric) != (2, "top5")]  # one seed lost
    results.append(result("random-1@30", 0, "b", "top1", 0.25))  # no top5 at all
    records = {r["selection"]: r for r in table_records(summarize(results))}
    assert records["all@100"]["b top5"] == "0.500 ± 0.000 (n=2)"
    assert records["all@100"]["b top1"] == "0.500 ± 0.000"
    assert records["random-1@30"]["b top5"] == "—"


def test_score_split_separates_kept_from_dropped_and_checks_lengths():
    split = ScoreSplit.from_scores("s@30", [0.9, 0.1, 0.8, 0.2], [True, False, True, False])
    assert split.kept_scores == (0.9, 0.8) and split.dropped_scores == (0.1, 0.2)
    assert split.summary()["kept"] == {"count": 2, "mean": pytest.approx(0.85), "min": 0.8,
                                       "max": 0.9}  # fmt: skip
    with pytest.raises(ValueError, match="3 scores but 2 kept"):
        ScoreSplit.from_scores("s@30", [0.1, 0.2, 0.3], [True, False])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    store = ArtifactStore(str(tmp_path_factory.mktemp("root")))
    results = grid()
    paths = write_report(store, "evaluation_report", results, splits(), "Demo", WHEN)
    return store, results, paths


def test_report_writes_every_file_under_the_folder_and_returns_their_urls(written):
    store, _, paths = written
    found = store.fs.ls(store.path("evaluation_report"), detail=False)
    names = sorted(posixpath.basename(p) for p in found)
    assert names == ["accuracy_vs_ratio.png", "report.html", "report.json", "report.md",
                     "score_histograms.png"]  # fmt: skip
    assert paths.json == store.url("evaluation_report", "report.json")
    assert paths.plots == {n: store.url("evaluation_report", n)
                           for n in ("accuracy_vs_ratio.png", "score_histograms.png")}  # fmt: skip


def test_report_json_round_trips_the_table_and_keeps_the_raw_results(written):
    store, results, paths = written
    doc = json.loads(store.fs.cat(store.path("evaluation_report", "report.json")))
    assert ReportTable.from_dict(doc["table"]) == summarize(results)
    assert [EvalResult(**r) for r in doc["results"]] == results
    assert doc["generated_at"] == "2026-11-01T12:00:00+00:00" and doc["seeds"] == [0, 1, 2]
    assert doc["benchmarks"] == ["rsscn7", "captions"]
    assert [s["kept"]["count"] for s in doc["score_splits"]] == [67, 67]


def test_report_markdown_and_html_carry_the_table_and_reference_the_plots(written):
    store, results, _ = written
    md = store.fs.cat(store.path("evaluation_report", "report.md")).decode()
    page = store.fs.cat(store.path("evaluation_report", "report.html")).decode()
    assert markdown_table(summarize(results)) in md
    assert "](accuracy_vs_ratio.png)" in md and "](score_histograms.png)" in md
    assert '<img src="accuracy_vs_ratio.png"' in page and '<img src="score_histograms.png"' in page
    top1 = summarize(results).row("clip-head-3f9@30").cell(Column("rsscn7", "top1")).format()
    assert f"<td>{top1}</td>" in page and "90 (4 excluded)" in page


def test_rewriting_replaces_the_report_and_removes_a_stale_histogram(tmp_path):
    store = ArtifactStore(str(tmp_path))
    write_report(store, "r", grid(), splits(), generated_at=WHEN)
    later = datetime(2026, 11, 2, tzinfo=UTC)
    paths = write_report(store, "r", grid(seeds=(0,)), (), generated_at=later)
    assert not store.exists("r", "score_histograms.png") and list(paths.plots) == [
        "accuracy_vs_ratio.png"
    ]
    doc = json.loads(store.fs.cat(store.path("r", "report.json")))
    assert doc["seeds"] == [0] and doc["generated_at"].startswith("2026-11-02")
    assert "score_histograms" not in store.fs.cat(store.path("r", "report.md")).decode()
    assert not [p for p in store.fs.ls(store.path("r"), detail=False) if ".tmp-" in p]


def test_report_writes_through_fsspec_to_a_non_local_store():
    store = ArtifactStore(f"memory://reports-{uuid.uuid4().hex}")
    paths = write_report(store, "evaluation_report", grid(seeds=(0, 1)), generated_at=WHEN)
    assert paths.markdown.startswith("memory://")
    doc = json.loads(store.fs.cat(store.path("evaluation_report", "report.json")))
    assert doc["files"]["markdown"] == paths.markdown
    assert store.fs.cat(store.path("evaluation_report", "accuracy_vs_ratio.png"))[:4] == b"\x89PNG"


def test_a_benchmark_without_known_metrics_keeps_its_own_headline_columns():
    results = [result("all@100", 0, "rsscn7", "top1", 0.5), result("all@100", 0, "vqa", "acc", 0.4)]
    table = summarize(results)
    assert table.headline_columns == (Column("rsscn7", "top1"), Column("vqa", "acc"))
    assert table.primary_columns == table.headline_columns
