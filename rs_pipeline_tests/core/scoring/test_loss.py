"""Ranking losses match their definitions: Plackett-Luce by brute force, BT as its K=2 case."""

from __future__ import annotations

import math

import pytest
import torch

from rs_pipeline.core.scoring.loss import (
    BradleyTerryLoss,
    PlackettLuceLoss,
    bradley_terry_loss,
    pairwise_accuracy,
    plackett_luce_loss,
)


def _brute_force_pl(rows: list[list[float]]) -> float:
    """-log of the product of sequential softmax choices, best-first, averaged over rows."""
    total = 0.0
    for row in rows:
        probability = 1.0
        for k in range(len(row)):
            remaining = row[k:]
            probability *= math.exp(row[k]) / sum(math.exp(s) for s in remaining)
        total += -math.log(probability)
    return total / len(rows)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_plackett_luce_equals_brute_force_product_of_choices(k):
    scores = torch.randn(5, k, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    expected = _brute_force_pl(scores.tolist())
    assert plackett_luce_loss(scores).item() == pytest.approx(expected, rel=1e-10)


def test_plackett_luce_with_two_candidates_is_bradley_terry():
    scores = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    pl = plackett_luce_loss(scores)
    bt = bradley_terry_loss(scores[:, 0], scores[:, 1])
    torch.testing.assert_close(pl, bt)


def test_plackett_luce_prefers_the_given_order():
    best_first = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert plackett_luce_loss(best_first) < plackett_luce_loss(best_first.flip(-1))


def test_bradley_terry_stays_finite_for_huge_margins():
    chosen, rejected = torch.tensor([1000.0, -1000.0]), torch.tensor([-1000.0, 1000.0])
    loss = bradley_terry_loss(chosen, rejected)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(1000.0)  # mean of ~0 and 2000


def test_losses_have_gradients():
    scores = torch.randn(3, 4, requires_grad=True)
    plackett_luce_loss(scores).backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_pairwise_accuracy_counts_ties_half():
    chosen = torch.tensor([2.0, 1.0, 1.0, 0.0])
    rejected = torch.tensor([1.0, 1.0, 2.0, 0.0])
    assert pairwise_accuracy(chosen, rejected) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert pairwise_accuracy(torch.ones(3), torch.zeros(3)) == 1.0


def test_bad_shapes_fail_with_what_was_expected():
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        plackett_luce_loss(torch.zeros(4))
    with pytest.raises(ValueError, match="differ"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="at least one pair"):
        pairwise_accuracy(torch.zeros(0), torch.zeros(0))


def test_module_wrappers_match_functions_and_name_their_terms():
    scores = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(PlackettLuceLoss()(scores), plackett_luce_loss(scores))
    named = PlackettLuceLoss(output_dict=True)(scores)
    assert set(named) == {"plackett_luce_loss"}
    chosen, rejected = scores[:, 0], scores[:, 1]
    assert torch.equal(BradleyTerryLoss()(chosen, rejected), bradley_terry_loss(chosen, rejected))
    assert set(BradleyTerryLoss(output_dict=True)(chosen, rejected)) == {"bradley_terry_loss"}
