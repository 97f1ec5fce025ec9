"""The data-parallel plumbing without a process group: slices, loss weights, one process."""

import pytest
import torch

from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.distributed import World, bounds, shard, share


@pytest.mark.parametrize(("n", "size"), [(8, 2), (7, 2), (10, 4), (3, 3), (5, 1)])
def test_the_ranks_slices_concatenate_to_the_global_batch(n, size):
    batch = list(range(100, 100 + n))
    slices = [shard(batch, World(rank=r, size=size)) for r in range(size)]
    assert [x for s in slices for x in s] == batch
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert [bounds(n, World(rank=r, size=size))[0] for r in range(size)] == [
        sum(len(s) for s in slices[:r]) for r in range(size)
    ]


def test_loss_weights_average_to_the_global_mean():
    # ranks' mean losses weighted by share, averaged over ranks = the global mean
    values, size = [1.0, 2.0, 3.0, 4.0, 5.0], 2
    means, weights = [], []
    for r in range(size):
        part = shard(values, World(rank=r, size=size))
        means.append(sum(part) / len(part))
        weights.append(share(len(part), len(values), World(rank=r, size=size)))
    averaged = sum(m * w for m, w in zip(means, weights, strict=True)) / size
    assert averaged == pytest.approx(sum(values) / len(values))


def test_one_process_is_rank_zero_of_one_and_changes_nothing():
    w = distributed.world()
    assert w == World() and w.is_main and not w.distributed
    assert share(3, 8, w) == 1.0 and distributed.all_sum(2.5) == 2.5
    x = torch.randn(3, 4, requires_grad=True)
    assert distributed.gather_rows(x, 3) is x
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 0.5)
    distributed.average_gradients([p])
    assert torch.equal(p.grad, torch.full((2,), 0.5))
    distributed.require_rows(1, setting="x")  # one row is enough for one process
