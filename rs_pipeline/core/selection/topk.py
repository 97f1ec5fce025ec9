"""Ranked selections: the top k% of scored pairs, globally or per stratum.

A selection is named `<scorer_version>@<percent>` (`all@100` is the identity). Ties are broken
by a content hash of the pair, never by input order, so the same scores give the same subset
on every machine and in every partition order.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ScoredPair:
    """One (image, caption) pair with its score and the stratum it belongs to."""

    sample_id: str
    caption_id: str
    score: float
    stratum: str = ""  # class or source, when selecting per stratum


@dataclass(frozen=True)
class Selected:
    """A pair kept by a selection, with its rank and why it was kept."""

    sample_id: str
    caption_id: str
    score: float
    rank: int  # 0 = best, within its stratum when stratified
    reason: str


def _tiebreak(p: ScoredPair) -> str:
    return hashlib.sha256(f"{p.sample_id}|{p.caption_id}".encode()).hexdigest()


def _top(
    pairs: Sequence[ScoredPair], percent: float, label: str, max_per_image: int | None = None
) -> list[Selected]:
    """The best `percent`% of `pairs` (of all of them, capped or not); with a cap, a pair
    beyond its image's first `max_per_image` is passed over for the next best."""
    ordered = sorted(pairs, key=lambda p: (-p.score, _tiebreak(p)))
    keep = math.ceil(len(ordered) * percent / 100.0) if percent > 0 else 0
    taken: dict[str, int] = defaultdict(int)
    out: list[Selected] = []
    note = f", at most {max_per_image} per image" if max_per_image else ""
    for i, p in enumerate(ordered):
        if len(out) == keep:
            break
        if max_per_image and taken[p.sample_id] >= max_per_image:
            continue
        taken[p.sample_id] += 1
        reason = f"rank {i + 1}/{len(ordered)} {label}{note}"
        out.append(Selected(p.sample_id, p.caption_id, score=p.score, rank=len(out), reason=reason))
    return out


def select_top(
    pairs: Sequence[ScoredPair],
    percent: float,
    *,
    stratified: bool = False,
    max_per_image: int | None = None,
) -> list[Selected]:
    """The best `percent`% of pairs by score, overall or within each stratum; optionally at
    most `max_per_image` captions of any one image (fewer pairs when the cap binds)."""
    if not 0 < percent <= 100:
        raise ValueError(f"selection percent must be in (0, 100], got {percent}")
    if not stratified:
        return _top(pairs, percent, f"<= top {percent:g}%", max_per_image)
    strata: dict[str, list[ScoredPair]] = defaultdict(list)
    for p in pairs:
        strata[p.stratum].append(p)
    out: list[Selected] = []
    for name in sorted(strata):
        label = f"<= top {percent:g}% of stratum {name!r}"
        out += _top(strata[name], percent, label, max_per_image)
    return out


@dataclass(frozen=True)
class Churn:
    """How a selection changed between two scorer versions."""

    kept: int
    added: int
    dropped: int
    jaccard: float


def churn(previous: set[str], current: set[str]) -> Churn:
    """Overlap of two selections (by caption id)."""
    union = previous | current
    both = previous & current
    return Churn(
        kept=len(both),
        added=len(current - previous),
        dropped=len(previous - current),
        jaccard=len(both) / len(union) if union else 1.0,
    )
