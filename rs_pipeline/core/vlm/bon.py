"""Best-of-N answers: of N sampled replies per question keep one, by the scorer or a baseline.

ScoreRS (arXiv 2503.00743) samples N answers from the fine-tuned VLM and keeps the one the
learned scorer ranks highest; greedy decoding, a random pick, a majority vote and a CLIP-score
pick are the baselines. Every n looks only at the FIRST n of one run's samples, so accuracy vs
N compares nested sets of the same answers rather than fresh draws per n.
"""

from __future__ import annotations

import inspect
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rs_pipeline.core.answers import extract_answer, is_correct
from rs_pipeline.core.seeds import seed_from
from rs_pipeline.core.vlm.questions import EvalQuestion

STRATEGIES = ("scorer", "random", "majority", "clipscore")
GREEDY = "greedy"  # the baseline row: one greedy-decoded answer per question, n = 1
SCORED = frozenset({"scorer", "clipscore"})  # strategies that rank by a score per answer


@dataclass(frozen=True)
class BonRow:
    """Accuracy of one strategy at one N on one benchmark (one checkpoint)."""

    benchmark: str
    strategy: str  # "greedy" or one of STRATEGIES
    n: int  # answers picked among; 1 for greedy
    accuracy: float
    questions: int


def _argmax(scores: Sequence[float], answers: int, strategy: str) -> int:
    if len(scores) != answers:
        raise ValueError(f"{strategy}: got {len(scores)} scores for {answers} answers")
    bad = [s for s in scores if not math.isfinite(s)]
    if bad:
        raise ValueError(f"{strategy}: non-finite scores {bad}; the scorer failed on an answer")
    # max() keeps the first of equal keys, so a tie goes to the earliest-sampled answer.
    return max(range(answers), key=lambda i: scores[i])


def _majority(answers: Sequence[str]) -> int:
    forms = [extract_answer(a) for a in answers]
    counts = Counter(forms)
    top = max(counts.values())
    # Scanning in sample order breaks a tie between forms by whichever appeared first.
    return next(i for i, f in enumerate(forms) if counts[f] == top)


def pick(
    strategy: str, answers: Sequence[str], scores: Sequence[float] | None, rng: random.Random
) -> int:
    """Index of the answer `strategy` keeps among `answers`.

    scorer / clipscore: the highest score (ties: the first); random: `rng`'s draw; majority: the
    first answer whose extracted form is the most common (ties: the form seen first).
    """
    if not answers:
        raise ValueError(f"{strategy}: no answers to pick from")
    if strategy in SCORED:
        if scores is None:
            raise ValueError(f"strategy {strategy!r} ranks answers: pass one score per answer")
        return _argmax(scores, len(answers), strategy)
    if strategy == "random":
        return rng.randrange(len(answers))
    if strategy == "majority":
        return _majority(answers)
    raise ValueError(f"unknown best-of-N strategy {strategy!r}; use one of {STRATEGIES}")


def _check_inputs(
    questions: Sequence[EvalQuestion],
    greedy: Sequence[str],
    samples: Sequence[Sequence[str]],
    scores: dict[str, Sequence[Sequence[float]]],
    ns: Sequence[int],
) -> None:
    if not len(questions) == len(greedy) == len(samples):
        raise ValueError(
            f"got {len(questions)} questions, {len(greedy)} greedy answers and {len(samples)} "
            "sample lists: pass one of each per question, in question order"
        )
    unknown = sorted(set(scores) - SCORED)
    if unknown:
        raise ValueError(f"scores for {unknown}: only {sorted(SCORED)} rank by scores")
    for name, per_question in scores.items():
        lengths = [len(s) for s in per_question]
        if lengths != [len(s) for s in samples]:
            raise ValueError(f"scores[{name!r}] must hold one score per sampled answer")
    fewest = min((len(s) for s in samples), default=0)
    bad = [n for n in ns if not 1 <= n <= fewest]
    if questions and bad:
        raise ValueError(
            f"best-of-N n {bad} out of range: each question has at least {fewest} samples, "
            "so every n must be in [1, that]; sample more answers or lower vlm.bon.n"
        )


def _accuracy(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits)


def bon_rows(
    questions: Sequence[EvalQuestion],
    greedy: Sequence[str],
    samples: Sequence[Sequence[str]],
    scores: dict[str, Sequence[Sequence[float]]],
    *,
    ns: Sequence[int],
    seed: int,
) -> list[BonRow]:
    """Per benchmark: the greedy row (n=1), then each n of `ns` x each usable strategy.

    `scores` maps "scorer" (and optionally "clipscore") to one score per sample; a scored
    strategy without an entry is skipped. The random pick of a question at n is drawn from
    `seed_from(seed, qid, n)`, so it repeats across runs and does not shift with other picks.
    """
    _check_inputs(questions, greedy, samples, scores, ns)
    strategies = [s for s in STRATEGIES if s not in SCORED or s in scores]
    by_bench: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_bench.setdefault(q.benchmark, []).append(i)
    rows: list[BonRow] = []
    for bench, idx in by_bench.items():
        hits = [is_correct(greedy[i], questions[i].reference) for i in idx]
        rows.append(BonRow(bench, GREEDY, 1, _accuracy(hits), len(idx)))
        for n in dict.fromkeys(ns):  # a repeated n would only repeat its rows
            for strategy in strategies:
                hits = []
                for i in idx:
                    rng = random.Random(seed_from(seed, questions[i].qid, n))
                    ranked = scores[strategy][i][:n] if strategy in SCORED else None
                    chosen = pick(strategy, samples[i][:n], ranked, rng)
                    hits.append(is_correct(samples[i][chosen], questions[i].reference))
                rows.append(BonRow(bench, strategy, n, _accuracy(hits), len(idx)))
    return rows


def _takes_batch_size(scorer) -> bool:
    """Whether `scorer.score` accepts `batch_size` (rule-based scorers such as the oracle don't)."""
    try:
        params = inspect.signature(scorer.score).parameters
    except (TypeError, ValueError):
        return False
    return "batch_size" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def score_answers(
    scorer,
    questions: Sequence[EvalQuestion],
    samples: Sequence[Sequence[str]],
    *,
    batch_size: int = 64,
) -> list[list[float]]:
    """One score per sampled answer, shaped like `samples`, in a single `scorer.score` call.

    The question text goes along as `questions`: a VQA-aware scorer judges an answer to it,
    not a caption. One flat call lets the scorer fill its batches across questions.
    """
    if len(questions) != len(samples):
        raise ValueError(f"got {len(questions)} questions but {len(samples)} sample lists")
    images = [q.image for q, answers in zip(questions, samples, strict=True) for _ in answers]
    asked = [q.text for q, answers in zip(questions, samples, strict=True) for _ in answers]
    texts = [a for answers in samples for a in answers]
    extra = {"batch_size": batch_size} if _takes_batch_size(scorer) else {}
    flat = scorer.score(images, texts, questions=asked, **extra)
    if len(flat) != len(texts):
        raise ValueError(f"scorer returned {len(flat)} scores for {len(texts)} answers")
    out, start = [], 0
    for answers in samples:
        out.append([float(s) for s in flat[start : start + len(answers)]])
        start += len(answers)
    return out
