"""Baselines: CLIPScore is a plain cosine on a chosen CLIP; random is a seeded, stable hash."""

from __future__ import annotations

import pytest
import torch

from rs_pipeline.core.scoring.base import Scorer
from rs_pipeline.core.scoring.baselines import ClipScoreScorer, RandomScorer, image_digest
from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.sources.synthrs import render_tile

TEXTS = ["a forest", "a lake", "farmland with a road", "an airport", "a beach"]


@pytest.fixture(scope="module")
def tiles() -> list:
    classes = ("forest", "lake", "farmland", "airport", "beach")
    return [render_tile(seed, cls)[0] for seed, cls in enumerate(classes)]


@pytest.fixture(scope="module")
def head() -> ClipHeadScorer:
    return ClipHeadScorer(seed=0)


def test_both_baselines_are_scorers(head):
    for scorer in (ClipScoreScorer.from_clip_head(head), RandomScorer(seed=0)):
        assert isinstance(scorer, Scorer)
    assert ClipScoreScorer.from_clip_head(head).backend == "clipscore"
    assert RandomScorer().backend == "random"


def test_clipscore_is_a_cosine_and_ignores_batch_order(head, tiles):
    scorer = ClipScoreScorer.from_clip_head(head)
    forward = scorer.score(tiles, TEXTS, batch_size=2)
    backward = scorer.score(tiles[::-1], TEXTS[::-1])
    assert forward == pytest.approx(backward[::-1], abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for s in forward)
    assert len(set(forward)) == len(forward)  # texts and images differ, so do the cosines


def test_clipscore_uses_the_same_towers_as_the_head_scorer(head, tiles):
    scorer = ClipScoreScorer.from_clip_head(head)
    assert scorer.model is head.clip
    head.eval()
    with torch.no_grad():
        img, txt = head.embed(**head.prepare(tiles, TEXTS))  # (B, D) each
    assert scorer.score(tiles, TEXTS) == pytest.approx((img * txt).sum(-1).tolist(), abs=1e-5)


def test_clipscore_by_name_matches_the_same_seeded_clip(head, tiles):
    by_name = ClipScoreScorer.from_name(head.clip_name, seed=head.seed)
    shared = ClipScoreScorer.from_clip_head(head)
    assert by_name.score(tiles, TEXTS) == pytest.approx(shared.score(tiles, TEXTS), abs=1e-6)


def test_random_is_deterministic_order_independent_and_in_unit_interval(tiles):
    scores = RandomScorer(seed=7).score(tiles, TEXTS)
    assert RandomScorer(seed=7).score(tiles, TEXTS) == scores
    assert RandomScorer(seed=7).score(tiles[::-1], TEXTS[::-1]) == scores[::-1]
    assert all(0.0 <= s < 1.0 for s in scores)
    assert RandomScorer(seed=8).score(tiles, TEXTS) != scores


def test_random_differs_across_texts_and_questions_but_not_image_copies(tiles):
    scorer, image = RandomScorer(seed=0), tiles[0]
    by_text = scorer.score([image] * 4, ["a", "b", "c", "d"])
    assert len(set(by_text)) == 4
    assert scorer.score([image.copy()], ["a"]) == by_text[:1]
    assert scorer.score([image], ["a"], ["what is it?"]) != by_text[:1]
    assert image_digest(image) == image_digest(image.copy()) != image_digest(tiles[1])


def test_mismatched_lengths_fail_for_every_baseline(head, tiles):
    for scorer in (ClipScoreScorer.from_clip_head(head), RandomScorer()):
        with pytest.raises(ValueError, match="one text per image"):
            scorer.score(tiles, TEXTS[:2])
