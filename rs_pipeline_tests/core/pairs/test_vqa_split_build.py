import pytest

from rs_pipeline.core.captions.base import Ranking
from rs_pipeline.core.pairs.build import agreement_rate, best_vs_rest, pairwise_agreement
from rs_pipeline.core.pairs.split import assign_split, split_key
from rs_pipeline.core.pairs.vqa import PriorAnswerer, is_correct, normalise_answer, questions_for
from rs_pipeline.core.sources.synthrs import render_tile


def annotation(seed=3, cls="parking_lot"):
    return render_tile(seed, cls)[1]


def test_questions_have_ground_truth_answers():
    ann = annotation()
    qs = questions_for("s", ann, max_per_image=50)
    counts = ann.counts()
    for q in qs:
        if q.qtype == "count":
            kind = next(k for k in counts if k.replace("_", " ") in q.text)
            assert q.reference == str(counts[kind])
        if q.qtype == "class":
            assert q.reference == "parking lot"
    assert {q.qtype for q in qs} >= {"class", "presence"}


def test_questions_are_capped_and_deterministic():
    ann = annotation()
    assert questions_for("s", ann, 2) == questions_for("s", ann, 2)
    assert len(questions_for("s", ann, 2)) == 2
    assert questions_for("s", None, 4) == []


@pytest.mark.parametrize(
    ("reference", "answer", "qtype", "right"),
    [("3", "Three.", "count", True), ("3", "4", "count", False),
     ("yes", "Yes, there is one.", "presence", True), ("no", "yes", "presence", False),
     ("top left", "Top-left", "position", True)],
)  # fmt: skip
def test_answers_are_compared_after_normalisation(reference, answer, qtype, right):
    from rs_pipeline.core.pairs.vqa import Question

    assert is_correct(Question("s", qtype, "?", reference), answer) is right
    assert normalise_answer("Twelve cars!") == "12 cars"


def test_prior_answerer_answers_the_most_common_reference_per_type():
    from rs_pipeline.core.pairs.vqa import Question

    qs = [Question("a", "count", "?", "2"), Question("b", "count", "?", "2"),
          Question("c", "count", "?", "5"), Question("d", "presence", "?", "no")]  # fmt: skip
    assert PriorAnswerer(qs).answer([], qs) == ["2", "2", "2", "no"]


def test_geo_referenced_neighbours_share_a_split_block():
    a = split_key("x", 47.001, 8.001, 0.05)
    b = split_key("y", 47.002, 8.003, 0.05)
    assert a == b and split_key("x", None, None, 0.05) == "image:x"


def test_split_fraction_is_close_to_configured():
    splits = [assign_split(f"image:{i}", 0.2) for i in range(5000)]
    assert 0.17 < splits.count("val") / 5000 < 0.23


def test_best_vs_rest_skips_ties_and_records_margins():
    ranking = Ranking(order=(1, 0, 2), scores=(0.5, 0.9, 0.9))
    pairs, ties = best_vs_rest(ranking)
    assert [(p.chosen, p.rejected) for p in pairs] == [(1, 0)] and ties == 1
    assert pairs[0].margin == pytest.approx(0.4)


def test_agreement_counts_same_order_and_half_for_ties():
    oracle = Ranking((0, 1, 2), (3.0, 2.0, 1.0))
    same = Ranking((0, 1, 2), (0.9, 0.5, 0.1))
    flipped = Ranking((2, 1, 0))
    tied = Ranking((0, 1, 2), (1.0, 1.0, 1.0))
    assert pairwise_agreement(same, oracle, 3) == (3, 3)
    assert pairwise_agreement(flipped, oracle, 3) == (0, 3)
    assert pairwise_agreement(tied, oracle, 3) == (1.5, 3)
    assert agreement_rate([(3, 3), (0, 3)]) == 0.5 and agreement_rate([]) is None
