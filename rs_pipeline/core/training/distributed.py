"""Data-parallel training across processes started by `torchrun`: one home for the plumbing.

Every trainer takes a *global* batch from its seeded order (`batches.seeded_batches`, the
same at any world size), each rank computes its contiguous slice of it, and gradients are
averaged across ranks after backward, as DistributedDataParallel does. Each trainer weights
its local loss so that the average of the ranks' gradients equals the single-process
gradient of the whole global batch (`share`), so a run at N ranks takes the same steps as
one process with the same batch and seed, within float rounding. The learning rate and the
global batch come from the config, never from the world size.

We average gradients explicitly rather than wrapping the model in DDP: the trainers call
submodules directly (`encode_image`, a scorer's `prepare`, per-stage parameter sets that
change mid-run), which DDP's forward hook would not see. The arithmetic is DDP's (one
all-reduce of the flattened gradients, divided by the world size); what it gives up is
DDP's overlap of communication with backward, which matters only at GPU scale.

Outside `torchrun` (no process group) everything here is the single process: rank 0 of 1,
no communication, loss weights of exactly 1.0, so in-process training is bit-identical.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, snapshots and lineage."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The current world: from the initialised process group, else the single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local)


def init_from_env(device: str = "cpu") -> World:
    """Join the process group `torchrun` describes (RANK, WORLD_SIZE, MASTER_ADDR ...).

    gloo on the CPU, nccl on CUDA (each rank on its LOCAL_RANK device). Without torchrun's
    variables this is the single process and nothing is initialised.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return World()
    if dist.is_initialized():
        return world()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # generous: rank 0 evaluates and writes between steps while the others wait
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timedelta(hours=2))
    return world()


def shutdown() -> None:
    """Leave the process group (end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def bounds(n: int, w: World) -> tuple[int, int]:
    """[start, stop) of rank `w.rank`'s contiguous slice of `n` items (sizes differ by <= 1)."""
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return start, start + base + (1 if w.rank < extra else 0)


def shard(items: Sequence[T], w: World) -> list[T]:
    """This rank's contiguous slice of a global batch: concatenated in rank order, the ranks'
    slices are the batch itself (what gathered features rely on)."""
    start, stop = bounds(len(items), w)
    return list(items[start:stop])


def require_rows(size: int, *, setting: str) -> None:
    """Fail with the fix when a global batch of `size` would leave a rank without rows."""
    w = world()
    if size < w.size:
        raise ValueError(
            f"a global batch of {size} leaves ranks idle at {w.size} processes: raise "
            f"{setting} or lower training.nproc_per_node"
        )


def share(local: float, total: float, w: World) -> float:
    """The weight of a rank's local *mean* loss so that averaging gradients over ranks gives
    the gradient of the global mean: `local / total * world size` (1.0 in one process)."""
    if not w.distributed:
        return 1.0
    return float(local) * w.size / float(total) if total else 0.0


def all_sum(value: float | int) -> float:
    """The sum of a number over ranks (the number itself in one process)."""
    if not world().distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over ranks (one flat all-reduce, as DDP does).

    A parameter without a gradient on this rank (unused by its slice) counts as zeros, so
    every rank joins the same collective with the same shapes.
    """
    w = world()
    if not w.distributed or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of numels,)
    dist.all_reduce(flat)
    flat /= w.size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def gather_rows(x: torch.Tensor, total: int) -> torch.Tensor:
    """Every rank's rows of a global batch of `total`, in rank order: (total, ...) from this
    rank's (b, ...), differentiable (all_gather's backward sums the ranks' gradients into each
    slice). Slices may differ by one row: each is padded to the longest for the collective."""
    w = world()
    if not w.distributed:
        return x
    spans = [bounds(total, World(rank=r, size=w.size)) for r in range(w.size)]
    most = max(stop - start for start, stop in spans)
    pad = [0, 0] * (x.dim() - 1) + [0, most - x.shape[0]]
    with warnings.catch_warnings():  # deprecated for a private successor; still the autograd one
        warnings.simplefilter("ignore", FutureWarning)
        parts = dist_nn.all_gather(torch.nn.functional.pad(x, pad))  # world x (most, ...)
    return torch.cat(
        [part[: stop - start] for part, (start, stop) in zip(parts, spans, strict=True)]
    )


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if world().distributed:
        dist.barrier()


def has_batch_norm(model: torch.nn.Module) -> bool:
    """Whether `model` normalises by batch statistics (which a sharded batch changes)."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def sync_batch_norm(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """BatchNorm layers synchronised across ranks on CUDA (statistics of the global batch).

    PyTorch's SyncBatchNorm runs only on accelerators: on the CPU a sharded BatchNorm model
    normalises by its slice's statistics, so it trains close to, not equal to, one process.
    """
    if world().distributed and device.startswith("cuda") and has_batch_norm(model):
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model
