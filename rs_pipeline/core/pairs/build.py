"""From judged rankings to preference pairs, and how far judges agree with the oracle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rs_pipeline.core.captions.base import Ranking


@dataclass(frozen=True)
class RankedPair:
    """Indices into one image's candidates: chosen beats rejected by `margin`."""

    chosen: int
    rejected: int
    margin: float | None


def best_vs_rest(ranking: Ranking) -> tuple[list[RankedPair], int]:
    """The best candidate against each of the others (as in the paper); ties are skipped.

    Returns the pairs and the number of ties skipped (a judge that cannot separate two
    candidates gives no preference between them).
    """
    best, *rest = ranking.order
    pairs, ties = [], 0
    for other in rest:
        if ranking.scores is None:
            pairs.append(RankedPair(best, other, None))
            continue
        margin = ranking.scores[best] - ranking.scores[other]
        if margin <= 0:
            ties += 1
            continue
        pairs.append(RankedPair(best, other, margin))
    return pairs, ties


def _positions(ranking: Ranking, n: int) -> list[float]:
    """Higher is better, per candidate: scores when given, else reversed rank."""
    if ranking.scores is not None:
        return list(ranking.scores)
    pos = [0.0] * n
    for rank, idx in enumerate(ranking.order):
        pos[idx] = float(n - rank)
    return pos


def pairwise_agreement(judge: Ranking, oracle: Ranking, n: int) -> tuple[float, int]:
    """(agreeing pairs, pairs counted) over candidate pairs the oracle separates.

    A judge tie on a pair the oracle separates counts as half agreement.
    """
    j, o = _positions(judge, n), _positions(oracle, n)
    agree, total = 0.0, 0
    for a in range(n):
        for b in range(a + 1, n):
            if o[a] == o[b]:
                continue
            total += 1
            if j[a] == j[b]:
                agree += 0.5
            elif (j[a] > j[b]) == (o[a] > o[b]):
                agree += 1
    return agree, total


def agreement_rate(parts: Sequence[tuple[float, int]]) -> float | None:
    """Pooled agreement over images; None when nothing was comparable."""
    total = sum(t for _, t in parts)
    return None if total == 0 else sum(a for a, _ in parts) / total
