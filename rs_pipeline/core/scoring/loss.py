"""The loss learned scorers train with: pairwise Bradley-Terry on chosen/rejected pairs.

ScoreRS writes its loss as Plackett-Luce over K ranked candidates and trains with its default
K = 2, where Plackett-Luce is exactly Bradley-Terry: -log sigmoid(s_chosen - s_rejected). Our
judges rank every candidate of an image, and the pairs stage turns each ranking into
best-vs-rest chosen/rejected pairs (`preference_pairs`), so the pairwise form is all that runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
