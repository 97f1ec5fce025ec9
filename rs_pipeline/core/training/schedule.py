"""The learning-rate schedule both trainers use: linear warmup, then cosine decay to zero."""

from __future__ import annotations

import math


def warmup_cosine(step: int, *, lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of 0-based `step`: `lr * (step + 1) / warmup_steps` while warming up,
    then a half cosine from `lr` to 0 at `total_steps` (and 0 after it)."""
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
