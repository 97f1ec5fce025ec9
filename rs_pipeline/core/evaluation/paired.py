"""Paired statistics between selections: per-seed differences, mean ± SE, and the oracle share.

Seed s of every selection fine-tunes from the same initialisation, so comparing two selections
per seed removes the init-to-init spread that a difference of means (each ± its own std) keeps.
A difference needs at least two shared seeds for a standard error; with fewer there is none
(`paired_difference` returns None rather than a number with an undefined SE).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from rs_pipeline.core.evaluation.summary import Cell, Column, ReportRow, ReportTable
from rs_pipeline.core.names import ALL_SELECTION

PAIRED_BASELINE = "clipscore"  # scorer name compared at the same percent
ORACLE = "oracle"  # scorer of known true quality: the ceiling a learned scorer can reach
SIGNIFICANCE_SE = 2.0  # a mean beyond this many standard errors is starred


@dataclass(frozen=True)
class PairedDiff:
    """Mean ± SE over shared seeds of (selection − reference) on one column."""

    reference: str  # the selection subtracted; "" where the caller did not name it
    benchmark: str
    metric: str
    n: int  # seeds both selections have
    mean: float
    se: float  # sample std of the per-seed differences (ddof=1) / sqrt(n)

    @property
    def column(self) -> Column:
        return Column(self.benchmark, self.metric)

    @property
    def significant(self) -> bool:
        """|mean| beyond 2 SE (or any nonzero mean when every seed moved by the same amount)."""
        if self.n < 2:
            return False
        if self.se == 0:
            return self.mean != 0
        return abs(self.mean) > SIGNIFICANCE_SE * self.se

    def format(self, digits: int = 3) -> str:
        """`+0.052 ± 0.011*`, the star marking a mean beyond 2 SE."""
        star = "*" if self.significant else ""
        return f"{self.mean:+.{digits}f} ± {self.se:.{digits}f}{star}"

    def to_dict(self) -> dict:
        """Every number, with `significant`, for JSON."""
        return {**asdict(self), "significant": self.significant}


def paired_difference(a: Cell, b: Cell, reference: str = "") -> PairedDiff | None:
    """a − b per seed over the seeds both cells have; None with fewer than 2 shared seeds."""
    if a.column != b.column:
        raise ValueError(f"paired difference of different columns: {a.column} vs {b.column}")
    b_by_seed = dict(zip(b.seeds, b.values, strict=True))
    a_by_seed = sorted(zip(a.seeds, a.values, strict=True))
    diffs = [v - b_by_seed[s] for s, v in a_by_seed if s in b_by_seed]
    if len(diffs) < 2:
        return None
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDiff(reference, a.benchmark, a.metric, len(diffs), statistics.fmean(diffs), se)


def paired(table: ReportTable, selection: str, column: Column, reference: str) -> PairedDiff | None:
    """`selection` − `reference` on `column`; None where either lacks the column or seeds."""
    a, b = table.row(selection).cell(column), table.row(reference).cell(column)
    if a is None or b is None:
        return None
    return paired_difference(a, b, reference)


def _same_percent(table: ReportTable, scorer: str, percent: float) -> ReportRow | None:
    """The first row (table order) of `scorer` at `percent`, if any."""
    return next((r for r in table.rows if r.scorer == scorer and r.percent == percent), None)


@dataclass(frozen=True)
class PairedRow:
    """One selection's paired differences on one column."""

    selection: str
    column: Column
    vs_all: PairedDiff | None  # against all@100; None for all@100 itself or without pairs
    vs_baseline: PairedDiff | None  # against clipscore at the same percent, where present


def paired_rows(table: ReportTable, column: Column) -> list[PairedRow]:
    """Every row's difference to all@100 and to clipscore at its own percent, in table order."""
    has_all = ALL_SELECTION in table.selections
    out = []
    for row in table.rows:
        vs_all = None
        if has_all and row.selection != ALL_SELECTION:
            vs_all = paired(table, row.selection, column, ALL_SELECTION)
        base = _same_percent(table, PAIRED_BASELINE, row.percent)
        vs_base = None
        if base is not None and base.selection != row.selection:
            vs_base = paired(table, row.selection, column, base.selection)
        out.append(PairedRow(row.selection, column, vs_all, vs_base))
    return out


def oracle_share(
    table: ReportTable, column: Column, learned_selection: str, percent: float | None = None
) -> float | None:
    """(learned − all) / (oracle − all) of the means; None without an oracle row, or where
    the oracle does not beat all@100 (a ratio of two losses is no share of a gain)."""
    learned = table.row(learned_selection)
    oracle = _same_percent(table, ORACLE, learned.percent if percent is None else percent)
    if oracle is None or ALL_SELECTION not in table.selections:
        return None
    cells = (learned.cell(column), oracle.cell(column), table.row(ALL_SELECTION).cell(column))
    if any(c is None for c in cells):
        return None
    got, ceiling, base = (c.mean for c in cells)  # type: ignore[union-attr]
    if ceiling - base <= 1e-12:
        return None  # the oracle gains nothing over all@100: no headroom to take a share of
    return (got - base) / (ceiling - base)
