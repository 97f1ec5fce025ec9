"""Report plots as PNG bytes: accuracy against selection ratio, kept/dropped score histograms,
best-of-N accuracy against N; and the two generic ones asset metadata shows (a histogram of
values, line curves per panel such as a training history).

Figures are built on the object API with the Agg canvas, never pyplot: no global figure state,
safe in threads (Dagster's in-process executor) and on machines without a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rs_pipeline.core.evaluation.bon_summary import GREEDY, BonLine, BonTable
from rs_pipeline.core.evaluation.summary import Column, ReportTable, ScoreSplit
from rs_pipeline.core.names import ALL_SELECTION

PANEL_SIZE = (4.2, 3.2)  # inches per small multiple
DPI = 100
_PALETTE = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def _figure(panels: int, max_cols: int = 3) -> tuple[Figure, list[Axes]]:
    cols = min(max_cols, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(
        figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[panels:]:
        ax.set_visible(False)  # the grid's unused cells
    return fig, axes[:panels]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same inputs give the same bytes, so re-runs are byte-identical.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _ratio_panel(ax: Axes, table: ReportTable, column: Column, colors: dict[str, str]) -> None:
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for row in table.rows:
        cell = row.cell(column)
        if cell is not None and row.selection != ALL_SELECTION:
            curves.setdefault(row.scorer, []).append((row.percent, cell.mean, cell.std))
    for i, (scorer, points) in enumerate(sorted(curves.items())):
        xs, ys, errs = zip(*sorted(points), strict=True)
        # Dodge: scorers usually share ratios (30%), and their error bars would hide each other.
        xs = [x + (i - (len(curves) - 1) / 2) * 0.8 for x in xs]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, color=colors[scorer], label=scorer)
    ref = next((r.cell(column) for r in table.rows if r.selection == ALL_SELECTION), None)
    if ref is not None:
        # The uncurated pool is one point at 100%; the line lets every ratio be compared to it.
        ax.axhline(ref.mean, ls="--", color="0.35", lw=1)
        ax.axhspan(ref.mean - ref.std, ref.mean + ref.std, color="0.5", alpha=0.15, lw=0)
        ax.errorbar(
            [100.0],
            [ref.mean],
            yerr=[ref.std],
            marker="s",
            capsize=3,
            color="0.35",
            label=ALL_SELECTION,
        )
    ax.set(title=column.benchmark, xlabel="% of pool kept", ylabel=column.metric, xlim=(0, 105))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def accuracy_vs_ratio(table: ReportTable, columns: Sequence[Column] | None = None) -> bytes:
    """PNG: one panel per column (default: the primary metric of each benchmark), mean ± std."""
    cols = list(columns or table.primary_columns)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the report; it has {list(table.columns)}")
    scorers = sorted({r.scorer for r in table.rows if r.selection != ALL_SELECTION})
    colors = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(scorers)}
    fig, axes = _figure(len(cols))
    for ax, col in zip(axes, cols, strict=True):
        _ratio_panel(ax, table, col, colors)
    return _png(fig)


def score_histograms(splits: Sequence[ScoreSplit], bins: int = 30) -> bytes:
    """PNG: per selection, overlaid histograms of kept and dropped scores (one panel each)."""
    if not splits:
        raise ValueError("no score splits to plot: pass one ScoreSplit per curated selection")
    fig, axes = _figure(len(splits))
    for ax, split in zip(axes, splits, strict=True):
        both = np.asarray(split.kept_scores + split.dropped_scores, dtype=np.float64)
        # Shared edges per panel: kept and dropped bars line up; scorers differ in scale.
        edges = np.histogram_bin_edges(both, bins=bins)
        for scores, label, color in (
            (split.dropped_scores, "dropped", "tab:gray"),
            (split.kept_scores, "kept", "tab:green"),
        ):
            if scores:
                ax.hist(
                    scores, bins=edges, alpha=0.6, color=color, label=f"{label} ({len(scores)})"
                )
        ax.set(title=split.selection, xlabel="score", ylabel="pairs")
        ax.legend(fontsize="small")
    return _png(fig)


def _bon_panel(ax: Axes, benchmark: str, lines: list[BonLine], colors: dict[str, str]) -> None:
    for line in lines:
        if line.strategy == GREEDY:
            continue
        xs = [c.n for c in line.cells]
        ys, errs = [c.mean for c in line.cells], [c.std for c in line.cells]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, color=colors[line.strategy],
                    label=line.strategy)  # fmt: skip
    greedy = next((x.cell(1) for x in lines if x.strategy == GREEDY), None)
    if greedy is not None:
        # One greedy answer per question has no N: a level every best-of-N line is read against.
        ax.axhline(greedy.mean, ls="--", color="0.35", lw=1, label=GREEDY)
        ax.axhspan(greedy.mean - greedy.std, greedy.mean + greedy.std, color="0.5", alpha=0.15,
                   lw=0)  # fmt: skip
    ax.set(title=benchmark, xlabel="N (answers sampled)", ylabel="accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def bon_accuracy_vs_n(table: BonTable) -> bytes:
    """PNG: per benchmark, accuracy vs N of each strategy pooled over checkpoints (mean ± std),
    greedy decoding as a dashed level."""
    if not table.lines:
        raise ValueError("no best-of-N lines to plot: materialize bon_eval first")
    strategies = sorted({x.strategy for x in table.lines if x.strategy != GREEDY})
    colors = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(strategies)}
    fig, axes = _figure(len(table.benchmarks))
    for ax, bench in zip(axes, table.benchmarks, strict=True):
        _bon_panel(ax, bench, table.pooled(bench), colors)
        ax.set_xticks(table.ns)
    return _png(fig)


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 30) -> bytes:
    """PNG: one histogram of `values` (e.g. every pair score of a batch), with its median."""
    if not values:
        raise ValueError(f"no values to plot for {title!r}")
    fig, (ax,) = _figure(1)
    data = np.asarray(values, dtype=np.float64)
    ax.hist(data, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(float(np.median(data)), ls="--", color="0.35", lw=1, label="median")
    ax.set(title=f"{title} (n={len(data)})", xlabel=xlabel, ylabel="count")
    ax.legend(fontsize="small")
    return _png(fig)


Curves = Mapping[str, Sequence[tuple[float, float]]]  # series label -> (x, y) points


def curves(panels: Mapping[str, Curves], *, xlabel: str) -> bytes:
    """PNG: one panel per entry (its title -> series), each series a line of its points."""
    if not panels:
        raise ValueError("no curves to plot: pass one panel of series at least")
    fig, axes = _figure(len(panels))
    for ax, (title, series) in zip(axes, panels.items(), strict=True):
        for i, (label, points) in enumerate(series.items()):
            xs, ys = zip(*points, strict=True) if points else ((), ())
            ax.plot(xs, ys, marker="o", ms=3, color=_PALETTE[i % len(_PALETTE)], label=label)
        ax.set(title=title, xlabel=xlabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize="small")
    return _png(fig)
