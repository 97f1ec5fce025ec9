import io

import pytest
from PIL import Image

from rs_pipeline.core.evaluation import plots
from rs_pipeline.core.evaluation.report import Column, ScoreSplit, summarize
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.names import parse_selection

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(selection, seed, benchmark, metric, value):
    _, scorer, percent = parse_selection(selection)
    return EvalResult(selection, scorer, percent, seed, benchmark, metric, value, 20, 0, "ckpt")


def table(benchmarks=("rsscn7",), with_all=True):
    sels = ["clip-head-3f9@10", "clip-head-3f9@30", "clipscore-a2b@30", "random-9c1@30"]
    sels += ["all@100"] if with_all else []
    return summarize([result(sel, seed, b, "top1", 0.3 + 0.01 * i + 0.02 * seed)
                      for i, sel in enumerate(sels) for seed in (0, 1, 2)
                      for b in benchmarks])  # fmt: skip


def decode(png: bytes) -> Image.Image:
    assert png[:8] == PNG_MAGIC
    img = Image.open(io.BytesIO(png))
    img.load()
    return img.convert("RGB")


def test_accuracy_vs_ratio_is_a_decodable_png_with_one_panel_per_benchmark():
    one = decode(plots.accuracy_vs_ratio(table()))
    two = decode(plots.accuracy_vs_ratio(table(("rsscn7", "aid"))))
    assert one.width >= 300 and one.height >= 200
    assert two.height == one.height and two.width == 2 * one.width
    assert len(one.getcolors(maxcolors=1 << 16)) > 20  # lines, markers and text, not a blank


def test_accuracy_vs_ratio_draws_the_all_reference():
    assert plots.accuracy_vs_ratio(table()) != plots.accuracy_vs_ratio(table(with_all=False))


def test_plots_are_byte_identical_for_the_same_inputs():
    assert plots.accuracy_vs_ratio(table()) == plots.accuracy_vs_ratio(table())


def test_accuracy_vs_ratio_rejects_a_column_the_report_lacks():
    with pytest.raises(ValueError, match="not in the report"):
        plots.accuracy_vs_ratio(table(), [Column("rsscn7", "mean_recall")])


def test_score_histograms_lay_out_one_panel_per_selection():
    splits = [ScoreSplit.from_scores(f"s{i}@30", [j / 50 for j in range(50)],
                                     [j >= 35 for j in range(50)]) for i in range(4)]  # fmt: skip
    full = decode(plots.score_histograms(splits))
    single = decode(plots.score_histograms(splits[:1]))
    assert (full.width, full.height) == (3 * single.width, 2 * single.height)  # 3 columns, 2 rows
    everything_kept = ScoreSplit.from_scores("all-kept@100", [0.1, 0.5, 0.9], [True] * 3)
    assert decode(plots.score_histograms([everything_kept])).size == single.size


def test_score_histograms_need_at_least_one_split():
    with pytest.raises(ValueError, match="no score splits"):
        plots.score_histograms([])


def test_a_histogram_and_curves_render_as_pngs_and_refuse_nothing_to_plot():
    assert decode(plots.histogram([0.1, 0.5, 0.5, 0.9], title="v", xlabel="score")).width > 0
    panels = {"loss": {"head": [(0, 1.0), (10, 0.5)], "text": [(20, 0.4)]}, "acc": {}}
    assert (
        decode(plots.curves(panels, xlabel="step")).width
        > decode(plots.histogram([1.0], title="v", xlabel="score")).width
    )  # two panels side by side
    with pytest.raises(ValueError, match="no values"):
        plots.histogram([], title="v", xlabel="score")
    with pytest.raises(ValueError, match="no curves"):
        plots.curves({}, xlabel="step")
