"""Staged training of a learned scorer on preference pairs, as in the paper.

Stage 1 trains the head only; stage 2 the vision tower + head; stage 3 the language/text tower
+ head. Each stage has its own learning rate with linear warmup and cosine decay, gradients are
clipped, CUDA runs under bf16 autocast, the held-out pairwise accuracy decides early stopping
(the best weights are kept in memory and restored at each stage's end), and a resumable
snapshot every `checkpoint_every` steps (with the best weights beside it) lets a crashed run
resume where that snapshot stopped and end exactly as an uninterrupted run would.

Under `torchrun` each rank scores its slice of the global batch and weights its loss by its
share of the pairs, so the averaged gradient is the global batch's; every rank evaluates the
same held-out pairs (same weights, same decision to stop) and rank 0 alone writes files.
"""

from __future__ import annotations

import os
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
    checkpoint_every: int | None = None  # steps between resumable snapshots; None: eval_every


@dataclass
class TrainState:
    """Where training stands; saved with every checkpoint so a crash resumes here."""

    stage_index: int = 0
    step: int = 0  # within the current stage
    best_accuracy: float = -1.0
    evals_without_gain: int = 0
    history: list[dict] = field(default_factory=list)
    best_file: str = "best.safetensors"  # the best weights' file beside this snapshot


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


# Best weights up to this size stay in RAM between evaluations; a larger model (the 7B reward
# model: ~15 GB in bf16, held by every rank) writes them at once instead, as a file per
# improvement, and reads them back at each stage's end.
IN_MEMORY_BEST_MAX_BYTES = 2 * 1024**3


class _Best:
    """The best weights so far: each stage starts from them and the run ends on them.

    Small models keep a CPU copy in memory, and it reaches disk only beside a snapshot (a
    resumed run needs the best of its own past); models over `IN_MEMORY_BEST_MAX_BYTES` write
    each improvement at once. Files are named per evaluation and the snapshot names its own:
    an older file is removed only after a newer snapshot is saved, so a crash between the two
    leaves both whole.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.weights: dict[str, torch.Tensor] | None = None
        self.tag, self.file = 0, None  # file: the current best's file, once on disk

    def keep(self, model: torch.nn.Module, tag: int) -> None:
        """Take `model`'s state (weights and BatchNorm statistics); `tag` names its file."""
        state = model.state_dict()
        self.tag, self.file = tag, None
        if sum(v.numel() * v.element_size() for v in state.values()) <= IN_MEMORY_BEST_MAX_BYTES:
            self.weights = {
                k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()
            }
        else:
            self.weights = None
            self._save(state)
            distributed.barrier()  # every rank reads it back at the stage's end

    def restore(self, model: torch.nn.Module) -> None:
        if self.weights is not None:
            model.load_state_dict(self.weights)
        elif self.file is not None:
            from safetensors.torch import load_model

            load_model(model, str(self.folder / self.file))

    def load(self, name: str) -> None:
        """On resume: the best weights of the snapshot's run, from the file it names."""
        path = self.folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"the training snapshot names best weights {path} that are missing: delete "
                f"{self.folder / 'last'} to train afresh"
            )
        self.file, self.weights = name, None  # read when a stage ends, not held meanwhile

    def write(self, state: TrainState) -> None:
        """Before a snapshot: the best weights on disk if they are not yet, named in `state`."""
        if self.file is None and self.weights is not None:
            self._save(self.weights)
        if self.file is not None:
            state.best_file = self.file

    def _save(self, weights: dict[str, torch.Tensor]) -> None:
        """Write `weights` as this evaluation's best file (rank 0 writes)."""
        self.file = f"best-{self.tag}.safetensors"
        if distributed.world().is_main:
            from safetensors.torch import save_file

            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f"{self.file}.tmp"
            save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp))
            os.replace(tmp, self.folder / self.file)

    def prune(self, state: TrainState) -> None:
        """After a snapshot: remove best-weights files no snapshot names any more (rank 0)."""
        if distributed.world().is_main:
            for path in self.folder.glob("best*.safetensors"):
                if path.name not in (state.best_file, self.file):
                    path.unlink(missing_ok=True)


def _keep_best(model, acc: float, state: TrainState, best: _Best) -> None:
    if acc > state.best_accuracy:
        state.best_accuracy, state.evals_without_gain = acc, 0
        best.keep(model, tag=len(state.history) - 1)  # the history point of this evaluation
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


def _distinct_images(train: Sequence[PairExample], n: int) -> list[Image.Image]:
    """The first `n` distinct images of the pairs, in order (an image has a pair per caption)."""
    seen: dict[int, Image.Image] = {}
    for p in train:
        seen.setdefault(id(p.image), p.image)
        if len(seen) == n:
            break
    return list(seen.values())


class _Norms:
    """BatchNorm running statistics (ResNet towers), calibrated to the weights before each
    evaluation.

    Running averages lag weights that change fast, so a briefly trained ResNet tower scores far
    worse in eval mode than it is; recomputing them on training images removes that bias. Only
    steps that train the norms' own tower can move them (frozen norms run in eval mode), so a
    recalibration is needed only after such steps: the head and text stages skip it, with
    identical results. A snapshot is calibrated, or is followed by such a step (one taken
    mid-way through the vision stage), so a resumed run starts calibrated.

    The statistics are estimated on up to `n` distinct training images. An image has one pair
    per caption: the images of the first `n` pairs ran each image 5-9 times in the demo, which
    weighted images by their caption count and cost that many forward passes without covering
    a single image more.
    """

    def __init__(self, model, train: Sequence[PairExample], calibrated: bool, n: int = 256):
        self.model, self.images = model, _distinct_images(train, n)
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


@dataclass
class _Run:
    """What every stage shares: the data, the plan, where it is saved, and what it keeps."""

    model: torch.nn.Module
    train: Sequence[PairExample]
    val: Sequence[PairExample]
    plan: TrainPlan
    last: Snapshots
    best: _Best
    norms: _Norms
    device: str
    log: Callable[[str], None]

    def evaluate(self, state: TrainState, point: dict, extra: dict | None = None) -> float:
        """Held-out accuracy of the current weights, recorded; the best weights are kept."""
        self.norms.ready()
        acc = evaluate(self.model, self.val, self.device)
        state.history.append(point | {"val_accuracy": acc} | (extra or {}))
        _keep_best(self.model, acc, state, self.best)
        return acc

    def snapshot(self, state: TrainState, opt: torch.optim.Optimizer) -> None:
        """The best weights (if they changed), then the resumable state that names them."""
        self.best.write(state)
        self.last.save(model=self.model, optimizer=opt, progress=asdict(state))  # rank 0 writes
        self.best.prune(state)


def _snapshot_due(plan: TrainPlan, state: TrainState) -> bool:
    """Every `checkpoint_every` steps of the whole plan (stage lengths as planned, so early
    stopping and resuming never shift the cadence)."""
    every = plan.checkpoint_every or plan.eval_every
    at = sum(sp.steps for sp in plan.stages[: state.stage_index]) + state.step
    return at % every == 0


def _run_stage(run: _Run, state: TrainState, bar) -> int:
    """Train one stage from `state.step`; returns the number of steps taken."""
    model, plan = run.model, run.plan
    sp = plan.stages[state.stage_index]
    params = _set_stage(model, sp.stage)
    opt = torch.optim.AdamW(params, lr=sp.lr, weight_decay=plan.weight_decay)
    if state.step and run.last.progress() is not None:  # mid-stage: the stage's own moments
        run.last.restore_optimizer(opt)
    taken = 0
    # A snapshot taken at an early stop resumes stopped: the stage does not train on.
    while state.step < sp.steps and state.evals_without_gain < plan.patience:
        for group in opt.param_groups:
            group["lr"] = lr_at(state.step, sp)
        order = _batch_order(len(run.train), state.stage_index, state.step, plan)
        batch = [run.train[i] for i in order]
        loss, value = _step_loss(model, batch, run.device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, plan.grad_clip)
        opt.step()
        run.norms.stepped()
        state.step, taken = state.step + 1, taken + 1
        bar.step()
        evaluated = state.step % plan.eval_every == 0 or state.step == sp.steps
        if evaluated:
            point = {"stage": sp.stage, "step": state.step, "loss": value}
            acc = run.evaluate(state, point, {"lr": lr_at(state.step - 1, sp)})
        if _snapshot_due(plan, state):
            run.snapshot(state, opt)
        if evaluated:
            run.log(f"stage {sp.stage} step {state.step}/{sp.steps} loss {value:.4f} "
                    f"val_acc {acc:.4f}")  # fmt: skip
            if state.evals_without_gain >= plan.patience:
                run.log(f"stage {sp.stage}: early stop, no gain in {plan.patience} evaluations")
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
    norms = _Norms(model, train, calibrated=resumed)  # a snapshot resumes calibrated
    run = _Run(model, train, val, plan, last, _Best(ckpt), norms, device, log)
    if resumed:
        last.restore_model(model)
        run.best.load(state.best_file)
        log(f"resuming at stage {state.stage_index} step {state.step}")
    else:  # the untrained scorer is a candidate too: a prior head may already be the best
        acc = run.evaluate(state, {"stage": "init", "step": 0, "loss": None})
        log(f"before training: val_acc {acc:.4f}")
    done = sum(sp.steps for sp in plan.stages[: state.stage_index]) + state.step
    steps, total = 0, sum(sp.steps for sp in plan.stages)
    bar = Progress(total - done, log, what="score model steps")  # at most; early stops end sooner
    while state.stage_index < len(plan.stages):
        steps += _run_stage(run, state, bar)
        run.best.restore(model)  # each stage starts from the best so far; the run ends on it
        state.stage_index, state.step, state.evals_without_gain = state.stage_index + 1, 0, 0
    model.eval()
    return TrainResult(state.best_accuracy, steps, resumed, state.history)
