"""Evaluation results summarised: selections x (benchmark, metric) as mean ± std over seeds.

Rows are ordered for reading a comparison, not by rank: learned scorers (by name, then percent),
then the baselines (`clipscore`, `random`, then the `oracle` ceiling), then `all@100` last, so
every ratio of one scorer sits together and the uncurated reference closes the table.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.names import ALL_SELECTION

# Listed after learned scorers, in this order; `oracle` selects by known true quality (ceiling).
BASELINE_SCORERS = ("clipscore", "random", "oracle")
RECALLS = tuple(f"{d}_R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10))
# VLM accuracies share `eval_results` with CLIP metrics; this prefix alone tells them apart.
VQA_PREFIX = "vqa_"
VQA_TYPES = ("count", "presence", "class", "position", "scene")
VQA_METRICS = (f"{VQA_PREFIX}all", *(f"{VQA_PREFIX}{t}" for t in VQA_TYPES))
# Column order within a benchmark; CLIP and VQA metrics never share a table.
METRIC_ORDER = ("top1", "top5", "mean_recall", *RECALLS, *VQA_METRICS)
HEADLINE_METRICS = ("top1", "top5", "mean_recall", "t2i_R@1", "i2t_R@1")
# The one metric per benchmark of the plot and paired table, first present wins.
PRIMARY_METRICS = ("top1", "mean_recall", "vqa_all")


class Column(NamedTuple):
    """One column of the report: a metric on a benchmark."""

    benchmark: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.benchmark} {self.metric}"


@dataclass(frozen=True)
class Cell:
    """One metric of one selection over its seeds."""

    benchmark: str
    metric: str
    mean: float
    std: float  # sample std (ddof=1); 0 with a single seed
    seeds: tuple[int, ...]
    values: tuple[float, ...]  # per seed, in `seeds` order

    @property
    def column(self) -> Column:
        return Column(self.benchmark, self.metric)

    def format(self, digits: int = 3) -> str:
        """`0.612 ± 0.021`."""
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass(frozen=True)
class Counts:
    """Images evaluated on one benchmark, and those excluded because training saw them."""

    benchmark: str
    n_images: int
    excluded: int


@dataclass(frozen=True)
class ReportRow:
    """One selection: a cell per column it has results for, image counts per benchmark."""

    selection: str
    scorer: str
    percent: float
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    counts: tuple[Counts, ...]

    def cell(self, column: Column) -> Cell | None:
        """The cell of `column`, or None where this selection has no result for it."""
        return next((c for c in self.cells if c.column == column), None)

    @classmethod
    def from_dict(cls, d: dict) -> ReportRow:
        """Rebuild a row from its `asdict` form (lists back to tuples)."""
        cells = tuple(
            Cell(**{**c, "seeds": tuple(c["seeds"]), "values": tuple(c["values"])})
            for c in d["cells"]
        )
        counts = tuple(Counts(**k) for k in d["counts"])
        return cls(**{**d, "seeds": tuple(d["seeds"]), "cells": cells, "counts": counts})


@dataclass(frozen=True)
class ReportTable:
    """Rows (selections) x columns (benchmark, metric)."""

    rows: tuple[ReportRow, ...]
    columns: tuple[Column, ...]  # every metric seen, benchmarks in first-seen order

    @property
    def benchmarks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.benchmark for c in self.columns))

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted({s for r in self.rows for s in r.seeds}))

    @property
    def selections(self) -> list[str]:
        return [r.selection for r in self.rows]

    @property
    def headline_columns(self) -> tuple[Column, ...]:
        """top1/top5 for classification, mean recall and R@1 both ways for retrieval."""
        out: list[Column] = []
        for bench in self.benchmarks:
            cols = [c for c in self.columns if c.benchmark == bench]
            # A benchmark with none of the known metrics still shows, with all of its own.
            out += [c for c in cols if c.metric in HEADLINE_METRICS] or cols
        return tuple(out)

    @property
    def primary_columns(self) -> tuple[Column, ...]:
        """One column per benchmark for the accuracy-vs-ratio plot."""
        out = []
        for bench in self.benchmarks:
            cols = [c for c in self.columns if c.benchmark == bench]
            ranked = [c for m in PRIMARY_METRICS for c in cols if c.metric == m]
            out.append((ranked or cols)[0])
        return tuple(out)

    def row(self, selection: str) -> ReportRow:
        """The row of one selection."""
        for r in self.rows:
            if r.selection == selection:
                return r
        raise KeyError(f"selection {selection!r} is not in the report: {self.selections}")

    def to_dict(self) -> dict:
        """Plain JSON-ready mapping; `from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReportTable:
        """Rebuild a table from `to_dict` output (e.g. a report.json read back)."""
        rows = tuple(ReportRow.from_dict(r) for r in data["rows"])
        return cls(rows=rows, columns=tuple(Column(*c) for c in data["columns"]))


@dataclass(frozen=True)
class ScoreSplit:
    """Scores of one selection's pool, split into the pairs it kept and those it dropped."""

    selection: str
    kept_scores: tuple[float, ...]
    dropped_scores: tuple[float, ...]

    @classmethod
    def from_scores(
        cls, selection: str, scores: Sequence[float], kept: Sequence[bool]
    ) -> ScoreSplit:
        """Split `scores` by the parallel `kept` mask."""
        if len(scores) != len(kept):
            raise ValueError(f"{selection}: {len(scores)} scores but {len(kept)} kept flags")
        if not scores:
            raise ValueError(f"{selection}: no scores to split (was the pool scored?)")
        bad = sum(not math.isfinite(s) for s in scores)
        if bad:
            raise ValueError(f"{selection}: {bad} non-finite scores; re-run pair_scores")
        pairs = list(zip(scores, kept, strict=True))
        return cls(
            selection,
            tuple(float(s) for s, k in pairs if k),
            tuple(float(s) for s, k in pairs if not k),
        )

    def summary(self) -> dict:
        """Counts and score ranges for JSON (the raw scores stay in pair_scores)."""

        def stats(xs: tuple[float, ...]) -> dict:
            if not xs:
                return {"count": 0}
            return {"count": len(xs), "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs)}

        return {
            "selection": self.selection,
            "kept": stats(self.kept_scores),
            "dropped": stats(self.dropped_scores),
        }


def is_vqa_metric(metric: str) -> bool:
    """Whether a metric is a VLM's VQA accuracy (`vqa_<qtype>`, `vqa_all`), not a CLIP metric."""
    return metric.startswith(VQA_PREFIX)


def split_results(
    results: Sequence[EvalResult],
) -> tuple[list[EvalResult], list[EvalResult]]:
    """(CLIP results, VQA results), each in input order: the two families never share a table."""
    clip = [r for r in results if not is_vqa_metric(r.metric)]
    return clip, [r for r in results if is_vqa_metric(r.metric)]


@dataclass(frozen=True)
class TrainedOn:
    """The seeds one model family (CLIP, VLM) was fine-tuned with on one selection."""

    family: str
    selection: str
    seeds: tuple[int, ...]


def _check(results: Sequence[EvalResult]) -> None:
    if not results:
        raise ValueError(
            "no evaluation results to report: materialize clip_checkpoints and evaluate them "
            "on at least one configured benchmark (evaluation.benchmarks) first"
        )
    seen: set[tuple] = set()
    for r in results:
        key = (r.selection, r.seed, r.benchmark, r.metric)
        if key in seen:
            raise ValueError(f"duplicate evaluation result {key}: one value per seed is expected")
        if not math.isfinite(r.value):
            raise ValueError(f"non-finite value {r.value} for {key}: re-run that evaluation")
        seen.add(key)


def _columns(results: Sequence[EvalResult]) -> tuple[Column, ...]:
    benchmarks = list(dict.fromkeys(r.benchmark for r in results))
    metrics = {b: {r.metric for r in results if r.benchmark == b} for b in benchmarks}

    def rank(m: str) -> tuple[int, str]:
        return (METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER), m)

    return tuple(Column(b, m) for b in benchmarks for m in sorted(metrics[b], key=rank))


def _cell(column: Column, results: list[EvalResult]) -> Cell:
    rs = sorted(results, key=lambda r: r.seed)
    values = tuple(r.value for r in rs)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    seeds = tuple(r.seed for r in rs)
    return Cell(column.benchmark, column.metric, statistics.fmean(values), std, seeds, values)


def _row(selection: str, results: list[EvalResult], columns: tuple[Column, ...]) -> ReportRow:
    by_col: dict[Column, list[EvalResult]] = defaultdict(list)
    for r in results:
        by_col[Column(r.benchmark, r.metric)].append(r)
    cells = tuple(_cell(c, by_col[c]) for c in columns if c in by_col)
    # Decontamination depends on the selection, not the seed: the max is the count itself.
    counts = tuple(
        Counts(
            b,
            max(r.n_images for r in results if r.benchmark == b),
            max(r.excluded for r in results if r.benchmark == b),
        )
        for b in dict.fromkeys(c.benchmark for c in columns if c in by_col)
    )
    first = results[0]
    seeds = tuple(sorted({r.seed for r in results}))
    return ReportRow(selection, first.scorer, first.percent, seeds, cells, counts)


def _order(row: ReportRow, baselines: Sequence[str]) -> tuple:
    if row.selection == ALL_SELECTION:
        group, name = len(baselines) + 1, ""
    elif row.scorer in baselines:
        group, name = 1 + list(baselines).index(row.scorer), row.scorer
    else:
        group, name = 0, row.scorer
    return (group, name, row.percent, row.selection)


def summarize(
    results: Sequence[EvalResult], baselines: Sequence[str] = BASELINE_SCORERS
) -> ReportTable:
    """Mean ± std over seeds of every (selection, benchmark, metric)."""
    _check(results)
    by_selection: dict[str, list[EvalResult]] = defaultdict(list)
    for r in results:
        by_selection[r.selection].append(r)
    columns = _columns(results)
    rows = [_row(sel, rs, columns) for sel, rs in by_selection.items()]
    rows.sort(key=lambda row: _order(row, baselines))
    return ReportTable(rows=tuple(rows), columns=columns)
