"""The batch order every trainer replays: seeded epochs of shuffled indices.

A resumed run skips the steps it already took but replays this order from the start, so its
batches are exactly an uninterrupted run's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def seeded_batches(n: int, *, batch_size: int, steps: int, seed: int) -> Iterator[list[int]]:
    """Seeded epochs of shuffled indices of `n` items, cut into full batches, `steps` of them."""
    rng, step, order = random.Random(seed), 0, []
    size = min(batch_size, n)
    while step < steps:
        if len(order) < size:
            fresh = list(range(n))
            rng.shuffle(fresh)
            order += fresh
        yield order[:size]
        order, step = order[size:], step + 1
