"""The training loss matches its definition: Bradley-Terry is the paper's Plackett-Luce at K=2."""

from __future__ import annotations

import math

import pytest
import torch

from rs_pipeline.core.scoring.loss import bradley_terry_loss, pairwise_accuracy


def _brute_force_pl(rows: list[list[float]]) -> float:
    """Plackett-Luce by its definition: -log of the product of sequential softmax choices,
    best-first, averaged over rows (the paper's listwise loss, kept here as the reference)."""
    total = 0.0
    for row in rows:
        probability = 1.0
        for k in range(len(row)):
            remaining = row[k:]
            probability *= math.exp(row[k]) / sum(math.exp(s) for s in remaining)
        total += -math.log(probability)
    return total / len(rows)


def test_bradley_terry_is_plackett_luce_with_two_candidates():
    scores = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bt = bradley_terry_loss(scores[:, 0], scores[:, 1])
    assert bt.item() == pytest.approx(_brute_force_pl(scores.tolist()), rel=1e-10)


def test_bradley_terry_prefers_the_given_order():
    chosen, rejected = torch.tensor([2.0, 1.0]), torch.tensor([0.0, -1.0])
    assert bradley_terry_loss(chosen, rejected) < bradley_terry_loss(rejected, chosen)


def test_bradley_terry_stays_finite_for_huge_margins():
    chosen, rejected = torch.tensor([1000.0, -1000.0]), torch.tensor([-1000.0, 1000.0])
    loss = bradley_terry_loss(chosen, rejected)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(1000.0)  # mean of ~0 and 2000


def test_loss_has_gradients():
    chosen, rejected = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    bradley_terry_loss(chosen, rejected).backward()
    assert chosen.grad is not None and chosen.grad.abs().sum() > 0
    assert rejected.grad is not None and rejected.grad.abs().sum() > 0


def test_pairwise_accuracy_counts_ties_half():
    chosen = torch.tensor([2.0, 1.0, 1.0, 0.0])
    rejected = torch.tensor([1.0, 1.0, 2.0, 0.0])
    assert pairwise_accuracy(chosen, rejected) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert pairwise_accuracy(torch.ones(3), torch.zeros(3)) == 1.0


def test_bad_shapes_fail_with_what_was_expected():
    with pytest.raises(ValueError, match="differ"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="differ"):
        pairwise_accuracy(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="at least one pair"):
        pairwise_accuracy(torch.zeros(0), torch.zeros(0))
