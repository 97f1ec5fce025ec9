"""Best-of-N selection against fixed scorers: picks, accuracy vs N, seeding, input checks."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from rs_pipeline.core.vlm.bon import GREEDY, STRATEGIES, BonRow, bon_rows, pick, score_answers
from rs_pipeline.core.vlm.questions import EvalQuestion

IMAGE = Image.new("RGB", (4, 4))


def question(qid: str, reference: str, benchmark: str = "synthrs-vqa") -> EvalQuestion:
    return EvalQuestion(
        qid=qid,
        benchmark=benchmark,
        qtype="count",
        sample_id=f"s-{qid}",
        image=IMAGE,
        text=f"how many? ({qid})",
        reference=reference,
    )


class ReferenceScorer:
    """A fixed scorer: 1.0 for an answer equal to its question's reference, 0.0 otherwise."""

    backend = "stub"

    def __init__(self, references: dict[str, str]) -> None:
        self.references = references  # question text -> reference
        self.calls: list[dict] = []

    def score(self, images, texts, questions=None, batch_size=64):
        self.calls.append({"texts": list(texts), "questions": questions, "batch_size": batch_size})
        return [float(t == self.references[q]) for t, q in zip(texts, questions, strict=True)]


def reference_scores(questions, samples):
    scorer = ReferenceScorer({q.text: q.reference for q in questions})
    return score_answers(scorer, questions, samples)


def by_key(rows: list[BonRow]) -> dict[tuple[str, int], float]:
    return {(r.strategy, r.n): r.accuracy for r in rows}


# The right answer "3" first appears at sample index 0, 1, 3 and 7 of four questions.
QUESTIONS = [question(f"q{i}", "3") for i in range(4)]
SAMPLES = [
    ["3", "1", "1", "1", "1", "1", "1", "1"],
    ["2", "3", "2", "2", "2", "2", "2", "2"],
    ["5", "5", "5", "3", "5", "5", "5", "5"],
    ["4", "4", "4", "4", "4", "4", "4", "3"],
]
GREEDY_ANSWERS = ["3", "2", "5", "4"]


def test_scorer_pick_accuracy_rises_with_n_as_more_samples_hold_a_right_answer():
    scores = {"scorer": reference_scores(QUESTIONS, SAMPLES)}
    rows = bon_rows(QUESTIONS, GREEDY_ANSWERS, SAMPLES, scores, ns=[1, 2, 4, 8], seed=0)
    acc = by_key(rows)
    assert [acc[("scorer", n)] for n in (1, 2, 4, 8)] == [0.25, 0.5, 0.75, 1.0]


def test_greedy_row_comes_first_with_n_one_and_the_greedy_accuracy():
    rows = bon_rows(QUESTIONS, GREEDY_ANSWERS, SAMPLES, {}, ns=[2], seed=0)
    assert rows[0] == BonRow("synthrs-vqa", GREEDY, 1, 0.25, 4)
    assert [r.strategy for r in rows[1:]] == ["random", "majority"]  # no scores: no scorer rows


def test_rows_come_per_benchmark_with_every_strategy_whose_scores_are_given():
    qs = [question("a", "yes", "synthrs-vqa"), question("b", "forest", "rsscn7")]
    samples = [["yes", "no"], ["forest", "river"]]
    scores = {"scorer": [[0.9, 0.1], [0.2, 0.8]], "clipscore": [[0.1, 0.9], [0.7, 0.3]]}
    rows = bon_rows(qs, ["no", "forest"], samples, scores, ns=[1, 2], seed=3)
    assert [(r.benchmark, r.strategy, r.n) for r in rows[:5]] == [
        ("synthrs-vqa", "greedy", 1),
        ("synthrs-vqa", "scorer", 1),
        ("synthrs-vqa", "random", 1),
        ("synthrs-vqa", "majority", 1),
        ("synthrs-vqa", "clipscore", 1),
    ]
    assert len(rows) == 2 * (1 + 2 * len(STRATEGIES))
    acc = {(r.benchmark, r.strategy, r.n): r.accuracy for r in rows}
    assert acc[("synthrs-vqa", "scorer", 2)] == 1.0 and acc[("synthrs-vqa", "clipscore", 2)] == 0
    assert acc[("rsscn7", "scorer", 2)] == 0.0 and acc[("rsscn7", "clipscore", 2)] == 1.0
    assert {r.questions for r in rows} == {1}


def test_n_picks_among_the_first_n_samples_only():
    # The best-scored answer is the last sample: unseen at n=1, picked at n=2.
    scores = {"scorer": [[0.0, 1.0]]}
    rows = bon_rows([question("a", "yes")], ["no"], [["no", "yes"]], scores, ns=[1, 2], seed=0)
    assert by_key(rows)[("scorer", 1)] == 0.0 and by_key(rows)[("scorer", 2)] == 1.0


def test_majority_vote_picks_the_first_answer_of_the_most_common_extracted_form():
    answers = ["Two.", "three", "<answer>Three</answer>", "two", "THREE, surely"]
    assert pick("majority", answers, None, random.Random(0)) == 1


def test_majority_tie_goes_to_the_form_seen_first():
    assert pick("majority", ["b", "a", "a", "b"], None, random.Random(0)) == 0


def test_majority_row_counts_the_mode_right_even_when_greedy_is_wrong():
    qs = [question("a", "yes")]
    rows = bon_rows(qs, ["no"], [["no", "yes", "Yes.", "no", "yes"]], {}, ns=[5], seed=0)
    assert by_key(rows)[("majority", 5)] == 1.0 and by_key(rows)[(GREEDY, 1)] == 0.0


@pytest.mark.parametrize("strategy", ["scorer", "clipscore"])
def test_scored_pick_takes_the_argmax_and_the_first_of_a_tie(strategy):
    rng = random.Random(0)
    assert pick(strategy, ["a", "b", "c"], [0.1, 0.7, 0.3], rng) == 1
    assert pick(strategy, ["a", "b", "c"], [0.5, 0.9, 0.9], rng) == 1


def test_random_pick_is_reproducible_for_the_seed():
    qs = [question(f"q{i}", "x") for i in range(40)]
    samples = [["x", "y", "z", "w"] for _ in qs]
    first = bon_rows(qs, ["y"] * 40, samples, {}, ns=[2, 4], seed=11)
    again = bon_rows(qs, ["y"] * 40, samples, {}, ns=[2, 4], seed=11)
    assert first == again
    others = [bon_rows(qs, ["y"] * 40, samples, {}, ns=[4], seed=s) for s in range(12, 16)]
    accs = {by_key(rows)[("random", 4)] for rows in others}
    assert len(accs) > 1  # the seed moves the draws
    assert 0.0 < by_key(first)[("random", 4)] < 1.0  # a pick, not always the first answer


def test_random_pick_does_not_depend_on_which_strategies_run():
    qs = [question(f"q{i}", "x") for i in range(20)]
    samples = [["x", "y", "z"] for _ in qs]
    scores = {"scorer": [[0.0, 0.0, 1.0] for _ in qs]}
    with_scorer = by_key(bon_rows(qs, ["y"] * 20, samples, scores, ns=[3], seed=5))
    without = by_key(bon_rows(qs, ["y"] * 20, samples, {}, ns=[3], seed=5))
    assert with_scorer[("random", 3)] == without[("random", 3)]


def test_n_larger_than_the_samples_per_question_raises():
    with pytest.raises(ValueError, match=r"n \[9\] out of range.*at least 8 samples"):
        bon_rows(QUESTIONS, GREEDY_ANSWERS, SAMPLES, {}, ns=[1, 9], seed=0)
    with pytest.raises(ValueError, match="out of range"):
        bon_rows(QUESTIONS, GREEDY_ANSWERS, SAMPLES, {}, ns=[0], seed=0)


def test_unknown_strategy_and_missing_scores_raise_clearly():
    with pytest.raises(ValueError, match="unknown best-of-N strategy 'best'"):
        pick("best", ["a"], None, random.Random(0))
    with pytest.raises(ValueError, match="'scorer' ranks answers"):
        pick("scorer", ["a", "b"], None, random.Random(0))
    with pytest.raises(ValueError, match="2 scores for 3 answers"):
        pick("clipscore", ["a", "b", "c"], [0.1, 0.2], random.Random(0))


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="one of each per question"):
        bon_rows(QUESTIONS, GREEDY_ANSWERS[:3], SAMPLES, {}, ns=[1], seed=0)
    with pytest.raises(ValueError, match="one score per sampled answer"):
        bon_rows(QUESTIONS, GREEDY_ANSWERS, SAMPLES, {"scorer": [[1.0]] * 4}, ns=[1], seed=0)
    with pytest.raises(ValueError, match="only .* rank by scores"):
        bon_rows(QUESTIONS, GREEDY_ANSWERS, SAMPLES, {"oracle": []}, ns=[1], seed=0)


def test_score_answers_scores_all_pairs_in_one_call_with_the_questions_and_reshapes():
    qs = [question("a", "yes"), question("b", "3")]
    scorer = ReferenceScorer({q.text: q.reference for q in qs})
    scores = score_answers(scorer, qs, [["no", "yes"], ["3", "2", "3"]], batch_size=7)
    assert scores == [[0.0, 1.0], [1.0, 0.0, 1.0]]
    assert len(scorer.calls) == 1
    call = scorer.calls[0]
    assert call["texts"] == ["no", "yes", "3", "2", "3"] and call["batch_size"] == 7
    assert call["questions"] == [qs[0].text] * 2 + [qs[1].text] * 3


def test_score_answers_leaves_out_batch_size_for_a_scorer_without_it():
    class Plain:
        backend = "plain"

        def score(self, images, texts, questions=None):
            return [float(len(t)) for t in texts]

    assert score_answers(Plain(), [question("a", "x")], [["ab", "c"]]) == [[2.0, 1.0]]
