"""The pure parts of the benchmarks: A/B alternation, the line fit, the scale-out arithmetic."""

from __future__ import annotations

import pytest

from benchmarks import nightly, scale_out, training


def test_alternate_flips_the_order_every_repeat_and_keeps_cpu_seconds():
    order: list[str] = []

    def run(name):
        return lambda: order.append(name) or 1.0

    out = training.alternate({"a": run("a"), "b": run("b")}, repeats=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert out == {"a": [1.0] * 3, "b": [1.0] * 3}
    assert len(training.CPU["a"]) == 3 and all(s >= 0 for s in training.CPU["a"])
    wall, _ = training.ratios(out)
    assert wall == 1.0


def test_scale_out_names_the_lineage_writer_when_it_is_the_floor():
    a = scale_out.Assumptions(pod_start_s=0.0)
    hours, binds = scale_out.hours(per_gpu=1e6, gpus=32, lineage=1_000.0, a=a)
    assert binds == "lineage writer"
    assert hours == scale_out.PAIRS / 1_000.0 / 3600
    hours, binds = scale_out.hours(per_gpu=10.0, gpus=1, lineage=1e9, a=a)
    assert binds == "" and hours == scale_out.PAIRS / 10.0 / 3600


def test_scale_out_rows_say_whether_decode_or_gpu_binds():
    a = scale_out.Assumptions()
    rows = scale_out.scenario("s", gpu_rate=100.0, decode=50.0, lineage=1e9, a=a)
    assert len(rows) == len(scale_out.GPUS) and all(r.endswith("decode (CPU) |") for r in rows)
    rows = scale_out.scenario("s", gpu_rate=50.0, decode=100.0, lineage=1e9, a=a)
    assert all(r.endswith("GPU |") for r in rows)


def test_a_core_prepares_pairs_decoding_each_image_once():
    a = scale_out.Assumptions(captions_per_image=4)
    rates = {"decode": 0.04, "clip": 0.01}
    assert scale_out.pairs_per_s_per_core(rates, "clip", a) == 1.0 / (0.01 + 0.01)


def test_linear_fit_recovers_a_line_and_scores_scatter_below_one():
    a, b, r2 = nightly.linear_fit([3, 5, 9, 17], [7.0 + 0.5 * x for x in (3, 5, 9, 17)])
    assert (a, b, r2) == (pytest.approx(7.0), pytest.approx(0.5), pytest.approx(1.0))
    _, _, r2 = nightly.linear_fit([1, 2, 3, 4], [1.0, 3.0, 1.0, 3.0])
    assert r2 < 0.5


def test_a_measured_section_keeps_its_set_up_out_of_the_cpu_seconds():
    from benchmarks.timing import CPU, Timing, alternate

    out = alternate({"a": lambda: Timing(wall=2.0, cpu=0.5), "b": lambda: 1.0}, repeats=2)
    assert out["a"] == [2.0, 2.0] and CPU["a"] == [0.5, 0.5]
    assert out["b"] == [1.0, 1.0] and all(s >= 0 for s in CPU["b"])
