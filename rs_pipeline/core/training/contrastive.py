"""Contrastive (CLIP) training of an open_clip model on (image, text) pairs.

Used to fine-tune CLIP on a curated selection, and to give the score model's towers a
contrastive warm start on the uncurated pool (our offline stand-in for a pretrained CLIP).
A fixed number of optimisation steps, whatever the data size, keeps selections comparable.

Under `torchrun` each rank embeds its slice of the global batch and the features are gathered
with their gradients (as open_clip's `gather_with_grad`), so every rank computes the loss of
the whole global batch, exactly the single-process loss, and averaging the ranks' gradients
gives its gradient. Augmentations are seeded per sample
(seed, step, position in the global batch), so a sample is cropped alike at any world size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from open_clip.loss import ClipLoss
from PIL import Image

from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.batches import seeded_batches
from rs_pipeline.core.training.locked_text import LockedText
from rs_pipeline.core.training.schedule import warmup_cosine
from rs_pipeline.core.training.snapshots import Snapshots


@dataclass(frozen=True)
class ContrastivePlan:
    """Steps, batch and schedule of one contrastive run."""

    steps: int = 100
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    lock_text: bool = False  # a pretrained text encoder stays frozen (see locked_text.py)


def _forward(model, tokenizer, locked: LockedText | None, images, texts: list[str]):
    """Image and text embeddings (B, D) and the logit scale; cached text features if locked."""
    if locked is None:
        ids = tokenizer(texts).to(images.device)  # (B, T)
        return model(images, ids)[:3]
    img = model.encode_image(images, normalize=True)  # (B, D)
    return img, locked.encode(model, texts), model.logit_scale.exp()


def _images(preprocess, pairs, idx: list[int], *, seed: int, step: int, offset: int):
    """This rank's slice of the global batch `idx`, preprocessed: (b, 3, H, W).

    Each sample's random augmentation draws from its own seed (plan seed, step, position in
    the global batch), so it does not depend on which rank, or how many, preprocess it.
    """
    out = []
    for pos, i in enumerate(idx, start=offset):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((seed, step, pos)) & 0xFFFF_FFFF_FFFF)
            out.append(preprocess(pairs[i][0]))
    return torch.stack(out)


def train_contrastive(
    model: torch.nn.Module,
    preprocess: Callable,
    tokenizer: Callable,
    pairs: Sequence[tuple[Image.Image, str]],
    plan: ContrastivePlan,
    *,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    snapshots: Snapshots | None = None,
    snapshot_every: int = 0,
) -> list[float]:
    """Train in place with the symmetric InfoNCE loss; returns the loss per step.

    With `snapshots`, the state is saved every `snapshot_every` steps and a run that was cut
    short resumes from its last snapshot, continuing exactly as an uninterrupted run would.
    """
    if len(pairs) < 2:
        raise ValueError(f"contrastive training needs at least 2 pairs, got {len(pairs)}")
    torch.manual_seed(plan.seed)
    model.to(device).train()
    texts_of = [t for _, t in pairs]
    locked = LockedText(model, tokenizer, texts_of, device) if plan.lock_text else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=plan.lr, weight_decay=plan.weight_decay)
    w = distributed.world()
    loss_fn, cuda = ClipLoss(), device.startswith("cuda")
    start, losses = snapshots.resume(model, opt) if snapshots else (0, [])
    if start and log:
        log(f"contrastive: resumed at step {start}/{plan.steps}")
    for step, idx in enumerate(
        seeded_batches(len(pairs), batch_size=plan.batch_size, steps=plan.steps, seed=plan.seed)
    ):
        if step < start:
            continue  # replaying the seeded order keeps the resumed batches identical
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(
                step, lr=plan.lr, warmup_steps=plan.warmup_steps, total_steps=plan.steps
            )
        distributed.require_rows(len(idx), setting="the batch size (finetune.batch_size)")
        start_at, _ = distributed.bounds(len(idx), w)
        mine = distributed.shard(idx, w)
        images = _images(preprocess, pairs, mine, seed=plan.seed, step=step, offset=start_at)
        images = images.to(device)  # (b, 3, H, W): this rank's slice
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            texts = [texts_of[i] for i in mine]
            img, txt, scale = _forward(model, tokenizer, locked, images, texts)
            img, txt = (
                distributed.gather_rows(img, len(idx)),
                distributed.gather_rows(txt, len(idx)),
            )
            loss = loss_fn(img.float(), txt.float(), scale.float())  # the global batch's (B, B)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, plan.grad_clip)
        opt.step()
        losses.append(loss.item())
        if log and (step + 1) % 25 == 0:
            log(f"contrastive step {step + 1}/{plan.steps} loss {loss.item():.4f}")
        if snapshots and snapshot_every and (step + 1) % snapshot_every == 0:
            snapshots.save(
                model=model, optimizer=opt, progress={"step": step + 1, "losses": losses}
            )
    model.eval()
    return losses
