"""Paired per-seed differences between selections, their rendering, and the oracle share."""

import json
import math

import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.evaluation.report import (
    Cell,
    Column,
    PairedDiff,
    oracle_share,
    paired_difference,
    paired_markdown,
    paired_records,
    paired_rows,
    summarize,
    write_report,
)
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.names import parse_selection

TOP1 = Column("rsscn7", "top1")


def result(selection, seed, value, benchmark="rsscn7", metric="top1"):
    _, scorer, percent = parse_selection(selection)
    return EvalResult(selection, scorer, percent, seed, benchmark, metric, value, 40, 0,
                      f"file:///ckpt/{selection}/{seed}")  # fmt: skip


def cell(values, seeds=None, column=TOP1):
    seeds = tuple(seeds if seeds is not None else range(len(values)))
    return Cell(*column, sum(values) / len(values), 0.0, seeds, tuple(values))


def results(per_selection, metric="top1"):
    """{selection: [value per seed 0, 1, ...]} as results on rsscn7."""
    return [result(sel, s, v, metric=metric) for sel, vs in per_selection.items()
            for s, v in enumerate(vs)]  # fmt: skip


def test_paired_difference_matches_hand_computation():
    diff = paired_difference(cell([0.60, 0.62, 0.65]), cell([0.55, 0.60, 0.58]), "all@100")
    # diffs 0.05, 0.02, 0.07: mean 0.046667, sd 0.025166, SE = sd / sqrt(3) = 0.014530
    assert diff.n == 3 and diff.reference == "all@100" and diff.column == TOP1
    assert diff.mean == pytest.approx(0.046667, abs=1e-6)
    assert diff.se == pytest.approx(0.014530, abs=1e-6)
    assert diff.significant and diff.format() == "+0.047 ± 0.015*"


def test_paired_difference_ignores_seeds_the_cells_do_not_share():
    a = cell([0.60, 0.62, 0.65, 0.99], seeds=(0, 1, 2, 7))  # seed 7 only in a
    b = cell([0.10, 0.55, 0.60, 0.58], seeds=(5, 0, 1, 2))  # seed 5 only in b, out of order
    diff = paired_difference(a, b)
    assert diff.n == 3 and diff.mean == pytest.approx(0.046667, abs=1e-6)


def test_paired_difference_needs_two_shared_seeds():
    assert paired_difference(cell([0.6, 0.7], seeds=(0, 1)), cell([0.5], seeds=(1,))) is None


def test_paired_difference_refuses_cells_of_different_columns():
    with pytest.raises(ValueError, match="different columns"):
        paired_difference(cell([0.6, 0.7]), cell([0.5, 0.6], column=Column("rsscn7", "top5")))


def test_an_insignificant_difference_is_not_starred():
    diff = paired_difference(cell([0.60, 0.50, 0.62]), cell([0.55, 0.58, 0.57]))  # +.05 -.08 +.05
    assert abs(diff.mean) < 2 * diff.se and not diff.significant
    assert diff.format() == f"+0.007 ± {diff.se:.3f}" and not diff.format().endswith("*")


def test_a_constant_nonzero_shift_is_significant_and_no_shift_is_not():
    assert PairedDiff("r", "b", "m", 3, 0.01, 0.0).significant
    assert not PairedDiff("r", "b", "m", 3, 0.0, 0.0).significant
    assert PairedDiff("r", "b", "m", 3, -0.03, 0.01).format(2) == "-0.03 ± 0.01*"


def test_oracle_rows_sort_after_random_and_before_all():
    table = summarize(results({"all@100": [0.5], "oracle-77a@30": [0.7], "random-9c1@30": [0.4],
                               "clipscore-a2b@30": [0.5], "clip-head-3f9@30": [0.6]}))  # fmt: skip
    assert table.selections == [
        "clip-head-3f9@30", "clipscore-a2b@30", "random-9c1@30", "oracle-77a@30", "all@100"
    ]  # fmt: skip


@pytest.fixture
def table():
    return summarize(results({
        "all@100": [0.55, 0.60, 0.58],
        "clip-head-3f9@30": [0.60, 0.62, 0.65],
        "clip-head-3f9@50": [0.56, 0.61, 0.59],
        "clipscore-a2b@30": [0.58, 0.61, 0.60],
        "oracle-77a@30": [0.70, 0.72, 0.71],
    }))  # fmt: skip


def test_paired_rows_compare_to_all_and_to_clipscore_at_the_same_percent(table):
    rows = {r.selection: r for r in paired_rows(table, TOP1)}
    head30 = rows["clip-head-3f9@30"]
    assert head30.vs_all.reference == "all@100"
    assert head30.vs_all.mean == pytest.approx(0.046667, abs=1e-6)
    assert head30.vs_baseline.reference == "clipscore-a2b@30"
    assert head30.vs_baseline.mean == pytest.approx((0.02 + 0.01 + 0.05) / 3)
    assert rows["clip-head-3f9@50"].vs_baseline is None  # no clipscore at 50%
    assert rows["clipscore-a2b@30"].vs_baseline is None  # not against itself
    assert rows["all@100"].vs_all is None


def test_paired_markdown_lists_vs_all_and_vs_clipscore_at_the_same_percent(table):
    lines = paired_markdown(table).splitlines()
    assert lines[0] == "Paired differences (per seed, mean ± SE; * beyond 2 SE)"
    assert lines[2] == "| selection | rsscn7 top1 vs all@100 | rsscn7 top1 vs clipscore@same % |"
    assert lines[4] == "| clip-head-3f9@30 | +0.047 ± 0.015* | +0.027 ± 0.012* |"
    assert lines[5].startswith("| clip-head-3f9@50 | +0.010 ± 0.000* | —")
    assert lines[-1] == "| all@100 | — | — |"


def test_paired_records_mark_a_difference_over_fewer_seeds_than_the_row_ran():
    data = results({"all@100": [0.5, 0.6], "clip-head-3f9@30": [0.6, 0.7, 0.8]})
    records = {r["selection"]: r for r in paired_records(summarize(data))}
    assert records["clip-head-3f9@30"]["rsscn7 top1 vs all@100"] == "+0.100 ± 0.000* (n=2)"


def test_report_files_carry_the_paired_section_and_every_number(tmp_path):
    store = ArtifactStore(str(tmp_path))
    data = results({"all@100": [0.55, 0.60, 0.58], "clip-head-3f9@30": [0.60, 0.62, 0.65]})
    write_report(store, "r", data)
    md = store.fs.cat(store.path("r", "report.md")).decode()
    page = store.fs.cat(store.path("r", "report.html")).decode()
    assert "## Paired differences (per seed, mean ± SE; * beyond 2 SE)" in md
    assert "| clip-head-3f9@30 | +0.047 ± 0.015* | — |" in md
    assert "<td>+0.047 ± 0.015*</td>" in page
    (entry,) = json.loads(store.fs.cat(store.path("r", "report.json")))["paired"]
    assert entry["selection"] == "clip-head-3f9@30" and entry["reference"] == "all@100"
    assert (entry["benchmark"], entry["metric"], entry["n"]) == ("rsscn7", "top1", 3)
    assert entry["mean"] == pytest.approx(0.046667, abs=1e-6)
    assert entry["se"] == pytest.approx(0.025166 / math.sqrt(3), abs=1e-6)
    assert entry["significant"] is True


def test_oracle_share_is_the_learned_gain_over_the_oracle_gain(table):
    learned, oracle, base = 0.62333333, 0.71, 0.57666667  # means of the fixture rows
    share = oracle_share(table, TOP1, "clip-head-3f9@30")
    assert share == pytest.approx((learned - base) / (oracle - base), abs=1e-6)
    assert oracle_share(table, TOP1, "clip-head-3f9@50") is None  # no oracle at 50%


def test_oracle_share_is_none_when_the_oracle_gains_nothing_over_all():
    data = summarize(results({"all@100": [0.5, 0.6], "oracle-1@30": [0.5, 0.6],
                              "clip-head-1@30": [0.55, 0.6]}))  # fmt: skip
    assert oracle_share(data, TOP1, "clip-head-1@30") is None


def test_oracle_share_is_none_when_the_oracle_loses_to_all():
    data = summarize(results({"all@100": [0.6, 0.7], "oracle-1@10": [0.5, 0.6],
                              "clip-head-1@10": [0.4, 0.5]}))  # fmt: skip
    assert oracle_share(data, TOP1, "clip-head-1@10") is None  # not a share of a gain
