"""Ground-truth caption quality and the oracle and label-consistency judges."""

from collections import defaultdict

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.captions.degraders import DEGRADATIONS, SynthRSDegrader
from rs_pipeline.core.captions.oracle import (
    LabelConsistencyJudge,
    OracleJudge,
    assess_caption,
    caption_quality,
)
from rs_pipeline.core.sources.synthrs import SCENE_CLASSES, render_tile


def view(seed: int, cls: str) -> SampleView:
    image, ann = render_tile(seed, cls)
    return SampleView(f"{cls}-{seed}", image, label=cls, annotation=ann)


def cands(*texts: str) -> list[Candidate]:
    return [Candidate("s", "t", t) for t in texts]


def test_degraded_caption_scores_below_its_faithful_source():
    wins, total = defaultdict(int), defaultdict(int)
    deg = SynthRSDegrader(per_image=len(DEGRADATIONS))
    for seed in range(17):  # 204 tiles, every class
        for cls in SCENE_CLASSES:
            v = view(seed, cls)
            faithful, *bad = deg.caption([v])
            fq = caption_quality(faithful.text, v.annotation)
            for c in bad:
                kind = c.degradation.split(":")[0]
                total[kind] += 1
                wins[kind] += fq > caption_quality(c.text, v.annotation)
    rates = {k: round(wins[k] / total[k], 3) for k in DEGRADATIONS}
    print("faithful-beats-degraded rate per kind:", rates, dict(total))
    assert set(total) == set(DEGRADATIONS) and min(total.values()) >= 100
    assert all(rate >= 0.95 for rate in rates.values()), rates


def test_assessment_explains_the_score():
    ann = view(2, "harbor").annotation
    a = assess_caption("a satellite image of a desert with nine airplanes.", ann)
    assert a.score == 0.0
    assert {"wrong class desert", "no airplane here", "wrong count airplane=9"} <= set(a.reasons)
    assert set(a.false_claims) == {
        "wrong class desert",
        "no airplane here",
        "wrong count airplane=9",
    }


def test_caption_stating_nothing_checkable_scores_low_but_above_a_false_one():
    ann = view(1, "parking_lot").annotation  # five cars
    nothing = caption_quality("a remote sensing image.", ann)
    assert 0.15 <= nothing <= 0.25
    assert caption_quality("a satellite image of a beach.", ann) < nothing
    assert caption_quality("a satellite image of a parking lot.", ann) > nothing


def test_counts_are_read_as_words_digits_and_absence():
    ann = view(1, "parking_lot").annotation  # five cars, no ships
    right, digits = "a parking lot with five cars.", "a parking lot with 5 cars."
    assert caption_quality(right, ann) == caption_quality(digits, ann)
    assert caption_quality("a parking lot with seven cars.", ann) < caption_quality(right, ann)
    assert "absent ship" in assess_caption("a parking lot with no ships.", ann).reasons
    assert "wrong absence car" in assess_caption("a parking lot with no cars.", ann).false_claims


def test_synonyms_and_spellings_are_understood():
    ann = view(1, "parking_lot").annotation
    a = assess_caption("A car park with five cars, a blue car on the right.", ann)
    assert a.false_claims == () and "class parking_lot" in a.reasons
    assert "blue car at right" in a.reasons
    forest = view(0, "forest").annotation  # no objects; trees are implied by the class
    assert assess_caption("a dense forest with many trees.", forest).false_claims == ()


def test_a_wrong_class_costs_more_than_a_wrong_colour():
    ann = view(1, "parking_lot").annotation
    wrong_colour = caption_quality("a parking lot with five cars, a red car on the right.", ann)
    wrong_class = caption_quality("a beach with five cars, a blue car on the right.", ann)
    assert wrong_class < wrong_colour


def test_garbled_and_truncated_text_is_penalised():
    ann = view(1, "parking_lot").annotation
    clean = caption_quality("a parking lot with five cars.", ann)
    assert caption_quality("a parking lot with five cars xqzt.", ann) < clean  # a non-word
    assert caption_quality("a parking lot with five cars and the", ann) < clean  # mid-phrase
    assert caption_quality("a the parking lot with five cars.", ann) < clean  # disfluent
    assert "ends mid-phrase" in assess_caption("a parking lot with five ca", ann).reasons


def test_oracle_ranks_faithful_first():
    for cls in SCENE_CLASSES:
        v = view(4, cls)
        candidates = SynthRSDegrader(per_image=4).caption([v])
        ranking = OracleJudge().rank(v, candidates[::-1])  # faithful last in input
        assert ranking.order[0] == len(candidates) - 1
        assert ranking.reason == "ground truth"
        assert ranking.scores[::-1][0] == caption_quality(candidates[0].text, v.annotation)


def test_oracle_breaks_ties_by_input_order_and_skips_unannotated_images():
    v = view(0, "lake")
    ranking = OracleJudge().rank(v, cands("a lake.", "a lake.", "a remote sensing image."))
    assert ranking.order == (0, 1, 2)
    assert OracleJudge().rank(SampleView("u", v.image, label="lake"), cands("a lake.")) is None


def test_label_consistency_prefers_consistent_over_inconsistent_and_generic():
    image, _ = render_tile(0, "forest")
    judge = LabelConsistencyJudge()
    for label, good, bad in [
        ("grass", "a green meadow", "a parking lot with cars"),
        ("river_lake", "a winding river", "dense forest"),
        ("industry", "factories and warehouses", "a residential area"),
        ("parking_lot", "a car park", "a sandy beach"),
        ("lake", "a small lake", "a river"),
    ]:
        texts = [bad, "an image of some area seen from above", good]
        ranking = judge.rank(SampleView("s", image, label=label), cands(*texts))
        assert ranking.order[0] == 2, (label, ranking)
        assert ranking.scores[2] > max(ranking.scores[:2])
        assert ranking.scores[1] > ranking.scores[0]  # naming nothing beats naming a wrong class


def test_label_consistency_prefers_more_specific_captions_within_a_tier():
    image, _ = render_tile(0, "forest")
    texts = ["a forest", "a dense evergreen forest beside a winding dirt road"]
    ranking = LabelConsistencyJudge().rank(SampleView("s", image, label="forest"), cands(*texts))
    assert ranking.order == (1, 0)


def test_label_consistency_accepts_user_synonyms_and_needs_a_label():
    image, _ = render_tile(0, "forest")
    judge = LabelConsistencyJudge(synonyms={"wetland": ("marsh", "swamp")})
    texts = cands("a desert", "a marsh with reeds")
    assert judge.rank(SampleView("s", image, label="wetland"), texts).order[0] == 1
    assert judge.rank(SampleView("u", image), texts) is None
