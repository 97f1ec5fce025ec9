"""Supervised fine-tuning of a Qwen2-VL-family model on (image, question, answer) triples.

The paper's recipe (LLaMA-Factory): LoRA rank 8, alpha 8 on every linear layer of the language
model, vision tower frozen, lr 2e-4, cosine with 3% warmup. The tiny CPU configuration fine-tunes
the language model fully, the vision tower still frozen. Only the reply is learned: prompt,
image and padding tokens carry no label. A fixed number of steps keeps selections comparable.

Under `torchrun` each rank encodes its slice of the global batch; the loss is a mean over the
reply tokens of the *global* batch (the ranks' token counts are summed first), so averaging
the ranks' gradients gives the single-process gradient whatever the slices' lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.batches import seeded_batches
from rs_pipeline.core.training.schedule import warmup_cosine
from rs_pipeline.core.training.snapshots import Snapshots
from rs_pipeline.core.vlm.chat import prompt_text, reply_text

IGNORE = -100  # transformers' cross-entropy skips this label
VISION_TOWER = "visual"  # what Qwen2-VL and Qwen2.5-VL call the vision tower (merger inside)


@dataclass(frozen=True)
class SFTPlan:
    """Steps, batch and schedule of one SFT run (warmup is a fraction of the steps)."""

    steps: int = 60
    batch_size: int = 8
    lr: float = 2e-4
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0


def vision_tower(model: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """(name, module) of the vision tower, wrapped in peft or not (the shallowest `visual`)."""
    found = [(n, m) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] == VISION_TOWER]
    if not found:
        raise ValueError(
            f"no `{VISION_TOWER}` vision tower in {type(model).__name__}: set vlm.model to a "
            "Qwen2-VL-family checkpoint (or `tiny`)"
        )
    return min(found, key=lambda nm: nm[0].count("."))


def language_linear_names(model: torch.nn.Module) -> list[str]:
    """Full names of every nn.Linear outside the vision tower, lm_head excluded."""
    vision, _ = vision_tower(model)
    head = model.get_output_embeddings()
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and module is not head
        and not (name == vision or name.startswith(vision + "."))
    ]


def freeze_vision(model: torch.nn.Module) -> torch.nn.Module:
    """The vision tower (and its patch merger) stops learning; returns `model`."""
    vision_tower(model)[1].requires_grad_(False)
    return model


def apply_lora(model: torch.nn.Module, *, rank: int = 8, alpha: int = 8, seed: int = 0):
    """A peft LoRA model: adapters on the language model's linear layers, all else frozen.

    The adapters' random init (lora_A) is drawn from `seed` on a forked RNG, so the same call
    gives the same adapters without moving the caller's RNG.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("LoRA needs peft: pip install peft (or set vlm.lora: never)") from err

    # Full module names, not suffixes: Qwen2.5-VL's vision MLP reuses gate/up/down_proj.
    targets = language_linear_names(model)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)  # freezes every non-adapter parameter


def encode_batch(processor, images: list[Image.Image], prompts: list[str], replies: list[str]):
    """Processor outputs of prompt + reply, right-padded, with `labels` on the reply only.

    Each row's prompt length comes from processing its prompt with its image alone (the image
    expands to a size-dependent number of tokens); the full row must start with exactly those
    tokens, or the mask would be wrong.
    """
    kw = dict(images=images, padding=True, padding_side="right", return_tensors="pt")
    full = processor(text=[p + r for p, r in zip(prompts, replies, strict=True)], **kw)
    head = processor(text=prompts, **kw)
    ids = full["input_ids"]  # (B, T)
    prompt_len = head["attention_mask"].sum(dim=1)  # (B,)
    labels = ids.clone()  # (B, T)
    for i, n in enumerate(prompt_len.tolist()):
        if not torch.equal(ids[i, :n], head["input_ids"][i, :n]):
            raise ValueError("the tokenised prompt + reply does not start with the prompt tokens")
        labels[i, :n] = IGNORE
    labels[full["attention_mask"] == 0] = IGNORE
    full["labels"] = labels
    return full


class _Trainable(torch.nn.Module):
    """The trainable parameters alone, as Snapshots saves and restores a model: the frozen
    rest is the seeded base, rebuilt identically, so a LoRA snapshot of a 7B model stays small."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        # a plain dict attribute: not registered, so nothing is duplicated into this module
        self.named = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        return dict(self.named)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if set(state_dict) != set(self.named):
            raise ValueError("the snapshot's trainable parameters differ from this model's")
        with torch.no_grad():
            for name, param in self.named.items():
                param.copy_(state_dict[name])


def _texts(processor, examples) -> tuple[list[str], list[str]]:
    prompts = [prompt_text(processor, q) for _, q, _ in examples]
    return prompts, [reply_text(processor, a) for _, _, a in examples]


def _step_loss(model, batch, device: str, cuda: bool):
    """(loss to backpropagate, the global batch's loss): this rank's reply-token mean, weighted
    by its share of the global batch's reply tokens."""
    w = distributed.world()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        loss = model(**batch).loss  # mean over the reply tokens of this rank's slice
    if not w.distributed:
        return loss, loss.item()
    tokens = int((batch["labels"][:, 1:] != IGNORE).sum())  # the model shifts labels by one
    total = distributed.all_sum(tokens)
    value = distributed.all_sum(loss.item() * tokens / total)
    return loss * distributed.share(tokens, total, w), value


def train_sft(
    model: torch.nn.Module,
    processor,
    examples: Sequence[tuple[Image.Image, str, str]],
    plan: SFTPlan,
    *,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    snapshots: Snapshots | None = None,
    snapshot_every: int = 0,
) -> list[float]:
    """Train in place on (image, question, answer) triples; returns the loss per step.

    The vision tower is frozen here too (the recipe, whatever the caller did). With
    `snapshots`, the state is saved every `snapshot_every` steps and a run cut short resumes
    from its last snapshot, continuing exactly as an uninterrupted run would.
    """
    if not examples:
        raise ValueError("SFT needs at least one (image, question, answer) example, got none")
    torch.manual_seed(plan.seed)
    freeze_vision(model)
    model.to(device).train()
    prompts, replies = _texts(processor, examples)
    state = _Trainable(model)
    params = list(state.named.values())
    opt = torch.optim.AdamW(params, lr=plan.lr, weight_decay=plan.weight_decay)
    warmup, cuda = math.ceil(plan.warmup_ratio * plan.steps), device.startswith("cuda")
    start, losses = snapshots.resume(state, opt) if snapshots else (0, [])
    if start and log:
        log(f"sft: resumed at step {start}/{plan.steps}")
    batches = seeded_batches(
        len(examples), batch_size=plan.batch_size, steps=plan.steps, seed=plan.seed
    )
    for step, idx in enumerate(batches):
        if step < start:
            continue  # replaying the seeded order keeps the resumed batches identical
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(
                step, lr=plan.lr, warmup_steps=warmup, total_steps=plan.steps
            )
        distributed.require_rows(len(idx), setting="vlm.batch_size")
        mine = distributed.shard(idx, distributed.world())
        batch = encode_batch(
            processor,
            [examples[i][0] for i in mine],
            [prompts[i] for i in mine],
            [replies[i] for i in mine],
        ).to(device)
        loss, value = _step_loss(model, batch, device, cuda)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, plan.grad_clip)
        opt.step()
        losses.append(value)
        if log and (step + 1) % 10 == 0:
            log(f"sft step {step + 1}/{plan.steps} loss {value:.4f}")
        if snapshots and snapshot_every and (step + 1) % snapshot_every == 0:
            progress = {"step": step + 1, "losses": losses}
            snapshots.save(model=state, optimizer=opt, progress=progress)
    model.eval()
    return losses
