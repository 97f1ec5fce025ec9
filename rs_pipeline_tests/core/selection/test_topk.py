import random

import pytest

from rs_pipeline.core.names import selection_name
from rs_pipeline.core.selection.topk import ScoredPair, churn, select_top


def pairs(n: int, strata=("a", "b")) -> list[ScoredPair]:
    rng = random.Random(0)
    return [ScoredPair(f"s{i}", f"c{i}", rng.random(), strata[i % len(strata)]) for i in range(n)]


def test_top_percent_keeps_the_highest_scores_with_reasons():
    data = pairs(100)
    kept = select_top(data, 30)
    assert len(kept) == 30
    threshold = sorted((p.score for p in data), reverse=True)[29]
    assert all(k.score >= threshold for k in kept)
    assert kept[0].rank == 0 and kept[0].reason.startswith("rank 1/100")


def test_ties_are_broken_by_content_not_input_order():
    tied = [ScoredPair(f"s{i}", f"c{i}", 1.0) for i in range(10)]
    a = [k.caption_id for k in select_top(tied, 30)]
    b = [k.caption_id for k in select_top(list(reversed(tied)), 30)]
    assert a == b and len(a) == 3


def test_stratified_selection_keeps_the_percent_of_every_stratum():
    data = pairs(90, strata=("a", "b", "c"))
    kept = select_top(data, 20, stratified=True)
    by = {s: sum(1 for k in kept if k.caption_id in {p.caption_id for p in data if p.stratum == s})
          for s in "abc"}  # fmt: skip
    assert by == {"a": 6, "b": 6, "c": 6}


def test_all_at_100_is_the_identity_and_names_read_well():
    data = pairs(17)
    assert {k.caption_id for k in select_top(data, 100)} == {p.caption_id for p in data}
    assert selection_name("clip-head-3f9a1c", 30.0) == "clip-head-3f9a1c@30"
    assert selection_name("all", 100) == "all@100"


def test_bad_percent_is_refused():
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        select_top(pairs(3), 0)


def test_churn_between_two_scorer_versions():
    c = churn({"a", "b", "c", "d"}, {"c", "d", "e"})
    assert (c.kept, c.added, c.dropped) == (2, 1, 2)
    assert c.jaccard == pytest.approx(2 / 5)


def test_one_caption_per_image_keeps_each_images_best_and_passes_over_the_rest():
    data = [ScoredPair(f"s{i // 3}", f"c{i}", float(100 - i)) for i in range(30)]  # 3 per image
    kept = select_top(data, 30, max_per_image=1)
    assert len(kept) == 9  # 30% of 30 pairs, one from each of the 9 best images
    assert [k.caption_id for k in kept] == [f"c{3 * i}" for i in range(9)]
    assert all("at most 1 per image" in k.reason for k in kept)
    assert [k.rank for k in kept] == list(range(9))


def test_a_binding_per_image_cap_keeps_fewer_pairs_rather_than_break_it():
    data = [ScoredPair(f"s{i // 5}", f"c{i}", float(i)) for i in range(10)]  # 2 images
    kept = select_top(data, 70, max_per_image=1)
    assert sorted(k.sample_id for k in kept) == ["s0", "s1"]
