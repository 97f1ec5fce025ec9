"""Ranking losses for learned scorers: Plackett-Luce over K ranked candidates, Bradley-Terry pairs.

ScoreRS fits its score model to ranked candidate lists. Plackett-Luce reads a best-first list as
sequential choices: the best is picked among all K, the second among the remaining K-1, and so on.
With K = 2 it reduces exactly to the Bradley-Terry pairwise loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def plackett_luce_loss(scores: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log P(ranking) for scores (B, K) given best-first."""
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (B, K) with K >= 2 candidates, got {tuple(scores.shape)}")
    # log of the denominator at step k: logsumexp over the candidates still left, k..K-1.
    remaining = torch.logcumsumexp(scores.flip(-1), dim=-1).flip(-1)  # (B, K)
    return (remaining - scores).sum(dim=-1).mean()


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean -log sigmoid(chosen - rejected) over pairs, each (B,)."""
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} differ"
        )
    return -F.logsigmoid(chosen - rejected).mean()  # logsigmoid stays finite for large margins


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs where chosen scores above rejected; ties count half."""
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} differ"
        )
    if chosen.numel() == 0:
        raise ValueError("pairwise accuracy needs at least one pair")
    wins = (chosen > rejected).float() + 0.5 * (chosen == rejected).float()  # (B,)
    return wins.mean().item()


class PlackettLuceLoss(nn.Module):
    """`plackett_luce_loss` as a module; `output_dict=True` names the term like open_clip losses."""

    def __init__(self, output_dict: bool = False) -> None:
        super().__init__()
        self.output_dict = output_dict

    def forward(self, scores: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Loss for scores (B, K), candidates best-first."""
        loss = plackett_luce_loss(scores)
        return {"plackett_luce_loss": loss} if self.output_dict else loss


class BradleyTerryLoss(nn.Module):
    """`bradley_terry_loss` as a module; `output_dict=True` names the term like open_clip losses."""

    def __init__(self, output_dict: bool = False) -> None:
        super().__init__()
        self.output_dict = output_dict

    def forward(
        self, chosen: torch.Tensor, rejected: torch.Tensor
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Loss for chosen and rejected scores, each (B,)."""
        loss = bradley_terry_loss(chosen, rejected)
        return {"bradley_terry_loss": loss} if self.output_dict else loss
