"""Staged training of a learned scorer on preference pairs, as in the paper.

Stage 1 trains the head only; stage 2 the vision tower + head; stage 3 the language/text tower
+ head. Each stage has its own learning rate with linear warmup and cosine decay, gradients are
clipped, CUDA runs under bf16 autocast, the held-out pairwise accuracy decides early stopping
(the best weights are kept), and a checkpoint after every evaluation lets a crashed run resume
where it stopped.

Under `torchrun` each rank scores its slice of the global batch and weights its loss by its
share of the pairs, so the averaged gradient is the global batch's; every rank evaluates the
same held-out pairs (same weights, same decision to stop) and rank 0 alone writes files.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

from rs_pipeline.core.progress import Progress
from rs_pipeline.core.scoring.base import Stage, TrainableScorer
from rs_pipeline.core.scoring.loss import bradley_terry_loss, pairwise_accuracy
from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.schedule import warmup_cosine
from rs_pipeline.core.training.snapshots import Snapshots


@dataclass(frozen=True)
class PairExample:
    """One preference pair with its image."""

    image: Image.Image
    chosen: str
    rejected: str
    question: str | None = None


@dataclass(frozen=True)
class StagePlan:
    """One training stage: which parameters, how fast, how long."""

    stage: Stage
    lr: float
    steps: int
    warmup_steps: int = 0


@dataclass(frozen=True)
class TrainPlan:
    """Everything the trainer needs besides the model and the data."""

    stages: tuple[StagePlan, ...]
    batch_size: int = 32
    grad_clip: float = 1.0
    weight_decay: float = 0.01
    eval_every: int = 25
    patience: int = 4
    seed: int = 0


@dataclass
class TrainState:
    """Where training stands; saved with every checkpoint so a crash resumes here."""

    stage_index: int = 0
    step: int = 0  # within the current stage
    best_accuracy: float = -1.0
    evals_without_gain: int = 0
    history: list[dict] = field(default_factory=list)


def lr_at(step: int, plan: StagePlan) -> float:
    """The stage's learning rate: warmup, then cosine to zero at its last step."""
    return warmup_cosine(step, lr=plan.lr, warmup_steps=plan.warmup_steps, total_steps=plan.steps)


def _batch_order(n: int, stage_index: int, step: int, plan: TrainPlan) -> list[int]:
    """Indices of the examples of one step: a seeded shuffle per epoch, so resume repeats it."""
    per_epoch = max(n // plan.batch_size, 1)
    epoch, offset = divmod(step, per_epoch)
    order = list(range(n))
    random.Random(f"{plan.seed}|{stage_index}|{epoch}").shuffle(order)
    start = offset * plan.batch_size
    return order[start : start + plan.batch_size] or order[: plan.batch_size]


def _pair_scores(model: TrainableScorer, pairs: Sequence[PairExample], device: str):
    """(chosen, rejected) scores, each (B,), with the forward pass on both halves at once."""
    images = [p.image for p in pairs] * 2
    texts = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    questions = [p.question for p in pairs] * 2
    batch = {k: v.to(device) for k, v in model.prepare(images, texts, questions).items()}
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
        scores = model(**batch).float()  # (2B,)
    return scores[: len(pairs)], scores[len(pairs) :]


@torch.inference_mode()
def evaluate(model, pairs: Sequence[PairExample], device: str, batch_size: int = 64) -> float:
    """Held-out pairwise accuracy (ties count half)."""
    model.eval()
    chosen, rejected = [], []
    for i in range(0, len(pairs), batch_size):
        c, r = _pair_scores(model, pairs[i : i + batch_size], device)
        chosen.append(c)
        rejected.append(r)
    model.train()
    return pairwise_accuracy(torch.cat(chosen), torch.cat(rejected))


@dataclass(frozen=True)
class TrainResult:
    """The best held-out pairwise accuracy, when it was reached, and the whole curve."""

    best_accuracy: float
    steps_run: int
    resumed: bool
    history: list[dict]


def _set_stage(model: torch.nn.Module, stage: Stage) -> list[torch.nn.Parameter]:
    """Freeze everything but the stage's parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = model.stage_parameters(stage)
    for p in params:
        p.requires_grad_(True)
    return params


def _restore_best(model, ckpt: Path) -> None:
    from safetensors.torch import load_model

    load_model(model, str(ckpt / "best.safetensors"))


def _keep_best(model, acc: float, state: TrainState, ckpt: Path) -> None:
    from safetensors.torch import save_model

    if acc > state.best_accuracy:
        state.best_accuracy, state.evals_without_gain = acc, 0
        if distributed.world().is_main:
            ckpt.mkdir(parents=True, exist_ok=True)
            save_model(model, str(ckpt / "best.safetensors"))
        distributed.barrier()  # the others may read it next (each stage starts from the best)
    else:
        state.evals_without_gain += 1


def _step_loss(model, batch: list[PairExample], device: str):
    """(loss to backpropagate, the global batch's loss) of this rank's slice of `batch`."""
    w = distributed.world()
    distributed.require_rows(len(batch), setting="the scorer's batch_size")
    mine = distributed.shard(batch, w)
    chosen, rejected = _pair_scores(model, mine, device)
    local = bradley_terry_loss(chosen, rejected)  # mean over this rank's pairs
    weight = distributed.share(len(mine), len(batch), w)
    if not w.distributed:
        return local, local.item()
    return local * weight, distributed.all_sum(local.item() * len(mine) / len(batch))


class _Norms:
    """BatchNorm running statistics (ResNet towers), calibrated to the weights before each
    evaluation.

    Running averages lag weights that change fast, so a briefly trained ResNet tower scores far
    worse in eval mode than it is; recomputing them on training images removes that bias. Only
    steps that train the norms' own tower can move them (frozen norms run in eval mode), and
    every saved snapshot is calibrated, so a recalibration is needed only after such steps:
    the head and text stages skip it, with identical results (it was 0.94 s of the score-model
    trainer's 1.38 s CPU overhead over a bare loop, benchmarks/RESULTS.md).
    """

    def __init__(self, model, train: Sequence[PairExample], calibrated: bool, n: int = 256):
        self.model, self.images = model, [p.image for p in train[:n]]
        self.calibrated = calibrated or not hasattr(model, "recalibrate_norms")

    def stepped(self) -> None:
        """After an optimizer step: stale if the step could move the norms' statistics."""
        if self.calibrated and getattr(self.model, "norms_trainable", lambda: True)():
            self.calibrated = False

    def ready(self) -> None:
        """Before an evaluation: recalibrate if stale."""
        if not self.calibrated:
            self.model.recalibrate_norms(self.images)
            self.calibrated = True


def _run_stage(
    model,
    train,
    val,
    plan: TrainPlan,
    state: TrainState,
    ckpt: Path,
    device,
    log,
    *,
    key,
    bar,
    norms: _Norms,
):
    """Train one stage from `state.step`; returns the number of steps taken."""
    sp = plan.stages[state.stage_index]
    params = _set_stage(model, sp.stage)
    opt = torch.optim.AdamW(params, lr=sp.lr, weight_decay=plan.weight_decay)
    last = Snapshots(ckpt / "last", key)
    if state.step and last.progress() is not None:  # mid-stage: the stage's own moments
        last.restore_optimizer(opt)
    taken = 0
    while state.step < sp.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(state.step, sp)
        batch = [train[i] for i in _batch_order(len(train), state.stage_index, state.step, plan)]
        loss, value = _step_loss(model, batch, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, plan.grad_clip)
        opt.step()
        norms.stepped()
        state.step, taken = state.step + 1, taken + 1
        bar.step()
        if state.step % plan.eval_every == 0 or state.step == sp.steps:
            norms.ready()
            acc = evaluate(model, val, device)
            point = {"stage": sp.stage, "step": state.step, "loss": value}
            state.history.append(point | {"val_accuracy": acc, "lr": lr_at(state.step - 1, sp)})
            _keep_best(model, acc, state, ckpt)
            last.save(model=model, optimizer=opt, progress=asdict(state))  # rank 0 writes
            log(f"stage {sp.stage} step {state.step}/{sp.steps} loss {value:.4f} "
                f"val_acc {acc:.4f}")  # fmt: skip
            if state.evals_without_gain >= plan.patience:
                log(f"stage {sp.stage}: early stop, no gain in {plan.patience} evaluations")
                break
    return taken


def _warn_batch_norm(model, device: str, log) -> None:
    w = distributed.world()
    if w.distributed and not device.startswith("cuda") and distributed.has_batch_norm(model):
        log(
            f"note: BatchNorm normalises each rank's slice on the CPU ({w.size} processes): "
            "training is close to, not equal to, one process (a ViT tower trains equal)"
        )
    distributed.sync_batch_norm(model, device)


def train_scorer(
    model: TrainableScorer,
    train: Sequence[PairExample],
    val: Sequence[PairExample],
    plan: TrainPlan,
    checkpoint_dir: str | Path,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    *,
    key: str = "",
) -> TrainResult:
    """Run every stage (resuming from `checkpoint_dir/last` if present); load the best weights.

    `key` names the plan and data the snapshot belongs to (e.g. a digest of the pairs): a
    snapshot under another key is ignored, so new training data starts afresh instead of
    resuming a stale run. The caller clears the snapshot once the trained model is saved.
    """
    if not train or not val:
        raise ValueError(f"need train and validation pairs, got {len(train)} and {len(val)}")
    ckpt = Path(checkpoint_dir)
    torch.manual_seed(plan.seed)
    _warn_batch_norm(model, device, log)
    model.to(device).train()
    last = Snapshots(ckpt / "last", key)
    progress = last.progress()
    state, resumed = TrainState(**(progress or {})), progress is not None
    norms = _Norms(model, train, calibrated=resumed)  # every snapshot is saved calibrated
    if resumed:
        last.restore_model(model)
        log(f"resuming at stage {state.stage_index} step {state.step}")
    else:  # the untrained scorer is a candidate too: a prior head may already be the best
        norms.ready()
        acc = evaluate(model, val, device)
        state.history.append({"stage": "init", "step": 0, "loss": None, "val_accuracy": acc})
        _keep_best(model, acc, state, ckpt)
        log(f"before training: val_acc {acc:.4f}")
    done = sum(sp.steps for sp in plan.stages[: state.stage_index]) + state.step
    steps, total = 0, sum(sp.steps for sp in plan.stages)
    bar = Progress(total - done, log, what="score model steps")  # at most; early stops end sooner
    while state.stage_index < len(plan.stages):
        steps += _run_stage(
            model, train, val, plan, state, ckpt, device, log, key=key, bar=bar, norms=norms
        )
        if (ckpt / "best.safetensors").exists():
            _restore_best(model, ckpt)  # each stage starts from the best so far
        state.stage_index, state.step, state.evals_without_gain = state.stage_index + 1, 0, 0
    model.eval()
    return TrainResult(state.best_accuracy, steps, resumed, state.history)
