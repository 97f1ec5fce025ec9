"""Best-of-N results summarised: accuracy per (strategy, N), mean ± std over checkpoints.

Lines come per (benchmark, selection, scorer version, strategy), the spread over that
selection's seeds, and pooled per (benchmark, strategy) over every selection's checkpoints:
a strategy's gain over greedy decoding is a property of the ranking, so the pooled lines are
the headline (and the plot), and the per-selection lines show whether it holds for each model.
Rows of lineage `bon_results` arrive here as `BonResult`s; `vlm.bon` writes them, and is a
floor above, so this module mirrors its strategy names rather than importing them.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rs_pipeline.core.names import ALL_SELECTION

GREEDY = "greedy"
STRATEGY_ORDER = (GREEDY, "scorer", "clipscore", "majority", "random")  # unknown ones after
POOLED = "every selection"  # the `selection` of a line pooled over all selections' checkpoints


@dataclass(frozen=True)
class BonResult:
    """One row of lineage `bon_results`: one strategy at one N of one checkpoint."""

    selection: str
    seed: int
    benchmark: str
    scorer_version: str  # the scorer that ranked the N answers
    strategy: str  # greedy | scorer | random | majority | clipscore
    n: int  # answers picked among (1 for greedy)
    accuracy: float
    questions: int
    checkpoint: str  # URL of the VLM checkpoint

    def row(self) -> dict:
        """As a plain mapping (JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class BonCell:
    """Accuracy at one N over the checkpoints of a line."""

    n: int
    mean: float
    std: float  # sample std (ddof=1); 0 with a single checkpoint
    values: tuple[float, ...]  # per checkpoint, in (selection, seed) order

    def format(self, digits: int = 3) -> str:
        """`0.612 ± 0.021`."""
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass(frozen=True)
class BonLine:
    """Accuracy vs N of one strategy on one benchmark, for one selection or pooled."""

    benchmark: str
    selection: str  # POOLED for every selection's checkpoints together
    strategy: str
    scorer_versions: tuple[str, ...]  # the rankers behind these numbers, sorted
    seeds: tuple[int, ...]
    questions: int  # asked per checkpoint (the most any checkpoint was asked)
    cells: tuple[BonCell, ...]  # ascending N

    def cell(self, n: int) -> BonCell | None:
        """The cell at `n`, or None where this line has no result there (greedy beyond 1)."""
        return next((c for c in self.cells if c.n == n), None)

    @classmethod
    def from_dict(cls, d: dict) -> BonLine:
        """Rebuild a line from its `asdict` form (lists back to tuples)."""
        cells = tuple(BonCell(**{**c, "values": tuple(c["values"])}) for c in d["cells"])
        versions, seeds = tuple(d["scorer_versions"]), tuple(d["seeds"])
        return cls(**{**d, "scorer_versions": versions, "seeds": seeds, "cells": cells})


@dataclass(frozen=True)
class BonTable:
    """Every line, per benchmark: pooled lines first, then each selection's."""

    lines: tuple[BonLine, ...]
    ns: tuple[int, ...]  # every N seen, ascending

    @property
    def benchmarks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(line.benchmark for line in self.lines))

    @property
    def selections(self) -> tuple[str, ...]:
        """The selections whose checkpoints were evaluated (not POOLED), in table order."""
        return tuple(dict.fromkeys(x.selection for x in self.lines if x.selection != POOLED))

    def pooled(self, benchmark: str) -> list[BonLine]:
        """The pooled line of each strategy on `benchmark`, in strategy order."""
        return [x for x in self.lines if x.benchmark == benchmark and x.selection == POOLED]

    def to_dict(self) -> dict:
        """Plain JSON-ready mapping; `from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BonTable:
        """Rebuild a table from `to_dict` output (e.g. a report.json read back)."""
        return cls(tuple(BonLine.from_dict(x) for x in data["lines"]), tuple(data["ns"]))


def _check(results: Sequence[BonResult]) -> None:
    if not results:
        raise ValueError("no best-of-N results to summarise: materialize bon_eval first")
    seen: set[tuple] = set()
    for r in results:
        key = (r.selection, r.seed, r.benchmark, r.scorer_version, r.strategy, r.n)
        if key in seen:
            raise ValueError(f"duplicate best-of-N result {key}: one value per seed is expected")
        if not math.isfinite(r.accuracy):
            raise ValueError(f"non-finite accuracy {r.accuracy} for {key}: re-run bon_eval")
        seen.add(key)


def _strategy_rank(strategy: str) -> tuple[int, str]:
    known = strategy in STRATEGY_ORDER
    return (STRATEGY_ORDER.index(strategy) if known else len(STRATEGY_ORDER), strategy)


def _selection_rank(selection: str) -> tuple[bool, str]:
    return (selection == ALL_SELECTION, selection)  # the uncurated reference closes a block


def _line(benchmark: str, selection: str, strategy: str, rs: list[BonResult]) -> BonLine:
    by_n: dict[int, list[BonResult]] = defaultdict(list)
    for r in sorted(rs, key=lambda r: (_selection_rank(r.selection), r.seed)):
        by_n[r.n].append(r)
    cells = []
    for n in sorted(by_n):
        values = tuple(r.accuracy for r in by_n[n])
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        cells.append(BonCell(n, statistics.fmean(values), std, values))
    versions = tuple(sorted({r.scorer_version for r in rs}))
    seeds = tuple(sorted({r.seed for r in rs}))
    questions = max(r.questions for r in rs)
    return BonLine(benchmark, selection, strategy, versions, seeds, questions, tuple(cells))


def summarize_bon(results: Sequence[BonResult]) -> BonTable:
    """Pooled and per-selection lines of every (benchmark, strategy), mean ± std per N."""
    _check(results)
    pooled: dict[tuple[str, str], list[BonResult]] = defaultdict(list)
    single: dict[tuple[str, str, str, str], list[BonResult]] = defaultdict(list)
    for r in results:
        pooled[(r.benchmark, r.strategy)].append(r)
        single[(r.benchmark, r.selection, r.scorer_version, r.strategy)].append(r)
    benchmarks = list(dict.fromkeys(r.benchmark for r in results))
    lines: list[BonLine] = []
    for bench in benchmarks:
        keys = sorted((s for b, s in pooled if b == bench), key=_strategy_rank)
        lines += [_line(bench, POOLED, s, pooled[(bench, s)]) for s in keys]
        mine = sorted(
            (k for k in single if k[0] == bench),
            key=lambda k: (_selection_rank(k[1]), k[2], _strategy_rank(k[3])),
        )
        lines += [_line(bench, k[1], k[3], single[k]) for k in mine]
    return BonTable(tuple(lines), tuple(sorted({r.n for r in results})))
