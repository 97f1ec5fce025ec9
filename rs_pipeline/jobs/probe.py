"""Tiny synthetic runs of each trainer, the same code path the stages use.

What the 2-process equality tests and `benchmarks.distributed` run: a ViT-tower scorer
(no BatchNorm, no dropout, so sharded batches train exactly as one), a ViT CLIP and the tiny
Qwen2-VL, on seeded SynthRS tiles. Rank 0 writes the final weights and a result record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from rs_pipeline.core.sources.synthrs import render_tile
from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.snapshots import Snapshots
from rs_pipeline.jobs.spec import ProbeSpec

CLASSES = ("forest", "lake", "desert", "residential")
PROBE_CLIP = "rs-vit-tiny-64"
WEIGHTS, RESULT = "model.safetensors", "result.json"


class Stopped(Exception):
    """The probe stopped on purpose after a snapshot, as a run that lost a pod does."""


@dataclass
class _StopAfter(Snapshots):
    stop_at: int = 0

    def save(self, *, model, optimizer, progress: dict) -> None:
        super().save(model=model, optimizer=optimizer, progress=progress)
        if self.stop_at and progress.get("step") == self.stop_at:
            raise Stopped(f"stopped after the snapshot of step {self.stop_at}")


_TRAIN_SECONDS: list[float] = []  # the last probe's training time (model and data built)


def _timed(train: Callable):
    """Run `train()` between barriers; its wall time is the probe's training time."""
    distributed.barrier()
    start = time.perf_counter()
    out = train()
    distributed.barrier()
    _TRAIN_SECONDS[:] = [time.perf_counter() - start]
    return out


def _tiles(n: int, offset: int = 0):
    """(image, class) of `n` seeded tiles, classes in turn."""
    return [(render_tile(offset + i, CLASSES[i % 4])[0], CLASSES[i % 4]) for i in range(n)]


def _snapshots(spec: ProbeSpec) -> Snapshots:
    return _StopAfter(
        Path(spec.out) / "snapshot", key=f"probe-{spec.trainer}", stop_at=spec.stop_at
    )


def _score(spec: ProbeSpec, log) -> tuple[torch.nn.Module, list[float]]:
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.scoring.train import PairExample, StagePlan, TrainPlan, train_scorer

    def pairs(n, offset):
        return [
            PairExample(img, f"a photo of a {c}", f"a photo of a {CLASSES[(i + 1) % 4]}")
            for i, (img, c) in enumerate(_tiles(n, offset))
        ]

    model = ClipHeadScorer(clip=PROBE_CLIP, dropout=0.0, seed=spec.seed)
    stages = (StagePlan("head", 1e-3, spec.steps, 1), StagePlan("vision", 1e-4, spec.steps))
    plan = TrainPlan(stages=stages, batch_size=spec.batch_size, eval_every=spec.steps,
                     patience=10, seed=spec.seed)  # fmt: skip
    train, val, ckpt = pairs(24, 0), pairs(8, 100), Path(spec.out) / "ckpt"
    result = _timed(lambda: train_scorer(model, train, val, plan, ckpt, log=log, key="probe-score"))
    return model, [h["loss"] for h in result.history if h["loss"] is not None]


def _clip(spec: ProbeSpec, log) -> tuple[torch.nn.Module, list[float]]:
    from rs_pipeline.core.models.clip import build_clip
    from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive

    model, preprocess, _, tokenizer = build_clip(PROBE_CLIP, seed=spec.seed)
    pairs = [(img, f"a photo of a {c} number {i}") for i, (img, c) in enumerate(_tiles(16))]
    plan = ContrastivePlan(steps=spec.steps, batch_size=spec.batch_size, lr=1e-3,
                           warmup_steps=1, seed=spec.seed)  # fmt: skip
    snaps, every = _snapshots(spec), spec.snapshot_every
    losses = _timed(lambda: train_contrastive(model, preprocess, tokenizer, pairs, plan, log=log,
                                              snapshots=snaps, snapshot_every=every))  # fmt: skip
    return model, losses


def _sft(spec: ProbeSpec, log) -> tuple[torch.nn.Module, list[float]]:
    from rs_pipeline.core.vlm.sft import SFTPlan, freeze_vision, train_sft
    from rs_pipeline.core.vlm.weights import build_base

    model, processor = build_base("tiny", seed=spec.seed)
    freeze_vision(model)
    # Answers of different lengths: the ranks' slices hold different numbers of reply tokens.
    examples = [(img, "What is in this tile?", f"A {c} tile" + " with roads" * (i % 3))
                for i, (img, c) in enumerate(_tiles(8))]  # fmt: skip
    plan = SFTPlan(steps=spec.steps, batch_size=spec.batch_size, lr=1e-3, warmup_ratio=0.2,
                   seed=spec.seed)  # fmt: skip
    snaps, every = _snapshots(spec), spec.snapshot_every
    losses = _timed(lambda: train_sft(model, processor, examples, plan, log=log, snapshots=snaps,
                                      snapshot_every=every))  # fmt: skip
    return model, losses


TRAINERS: dict[str, Callable] = {"score": _score, "clip": _clip, "sft": _sft}


def run_probe(spec: ProbeSpec, log: Callable[[str], None] | None = None) -> dict:
    """Train one probe; rank 0 writes `model.safetensors` and `result.json` to `spec.out`."""
    w = distributed.world()
    try:
        model, losses = TRAINERS[spec.trainer](spec, log or (lambda _: None))
    except Stopped as stop:
        return {"trainer": spec.trainer, "world_size": w.size, "stopped": str(stop)}
    record = {"trainer": spec.trainer, "world_size": w.size, "steps": spec.steps,
              "batch_size": spec.batch_size, "losses": losses,
              "train_seconds": _TRAIN_SECONDS[0]}  # fmt: skip
    if w.is_main:
        out = Path(spec.out)
        out.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_file(weights, str(out / WEIGHTS))
        (out / RESULT).write_text(json.dumps(record, indent=2))
    return record
