"""The `score_model` stage: train (or register) one scorer version and measure it."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig, ScorerSpec
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.layout import SCORE_MODEL_ASSET, model_dir
from rs_pipeline.core.scoring.backends import BuildInputs, get_backend, save_scorer
from rs_pipeline.core.scoring.data import PairData, load_pair_data
from rs_pipeline.core.scoring.train import (
    PairExample,
    StagePlan,
    TrainPlan,
    train_scorer,
)
from rs_pipeline.core.scoring.versions import spec_for, weights_digest
from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.snapshots import Snapshots


@dataclass(frozen=True)
class ScoreModelReport:
    """The registered scorer, its held-out accuracy and the clipscore baseline's."""

    version: str
    backend: str
    val_accuracy: float
    clipscore_val_accuracy: float | None
    train_pairs: int
    val_pairs: int
    batches: list[str]
    url: str
    weights_sha256: str
    history: list[dict]

    def required_accuracy(self, min_val_accuracy: float) -> float:
        """The bar a learned scorer must clear: the threshold and CLIPScore on the same pairs."""
        return max(min_val_accuracy, self.clipscore_val_accuracy or 0.0)


def pair_accuracy(scorer, pairs: list[PairExample], batch_size: int = 64) -> float:
    """Held-out pairwise accuracy of any scorer (ties count half)."""
    import torch

    from rs_pipeline.core.scoring.loss import pairwise_accuracy

    chosen, rejected = [], []
    for i in range(0, len(pairs), batch_size):
        part = pairs[i : i + batch_size]
        images, questions = [p.image for p in part], [p.question for p in part]
        chosen += scorer.score(images, [p.chosen for p in part], questions)
        rejected += scorer.score(images, [p.rejected for p in part], questions)
    return pairwise_accuracy(torch.tensor(chosen), torch.tensor(rejected))


def _train_plan(spec: ScorerSpec) -> TrainPlan:
    return TrainPlan(
        stages=tuple(StagePlan(s.stage, s.lr, s.steps, s.warmup_steps) for s in spec.stages),
        batch_size=spec.batch_size,
        grad_clip=spec.grad_clip,
        eval_every=spec.eval_every,
        patience=spec.patience,
        checkpoint_every=spec.checkpoint_every,
        seed=spec.seed,
    )


def _pairs_digest(pairs: list[PairExample]) -> str:
    """sha256 of the pairs in order: texts, questions and image pixels (hashed once each)."""
    h, seen = hashlib.sha256(), {}
    for p in pairs:
        if id(p.image) not in seen:
            img = p.image
            pixels = hashlib.sha256(f"{img.mode}|{img.size}|".encode() + img.tobytes())
            seen[id(p.image)] = pixels.hexdigest()
        h.update(json.dumps([seen[id(p.image)], p.chosen, p.rejected, p.question]).encode())
    return h.hexdigest()


def training_key(spec: ScorerSpec, data: PairData) -> str:
    """What a training snapshot belongs to: the plan and the training data (batches, counts,
    the pairs themselves). Another batch or changed pairs give another key, so training
    starts afresh instead of resuming a stale run found by the version name alone."""
    record = {
        "plan": asdict(_train_plan(spec)),
        "batches": list(data.batches),
        "counts": [len(data.train), len(data.val), len(data.pool)],
        "train": _pairs_digest(data.train),
        "val": _pairs_digest(data.val),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _snapshots(workdir: Path, key: str) -> Snapshots:
    return Snapshots(workdir / "ckpt" / "last", key)  # where train_scorer keeps its snapshot


def _build(inputs: BuildInputs, workdir: Path, log, key: str):
    """The scorer of a spec, trained where its backend learns; plus its training history."""
    spec = inputs.spec
    backend = get_backend(spec.backend, where=f"scorer {spec.name!r}")
    scorer = backend.build(inputs)
    if not backend.learns or spec.checkpoint:  # a registered checkpoint is measured as it is
        return scorer, []
    result = train_scorer(
        scorer, inputs.data.train, inputs.data.val, _train_plan(spec), workdir / "ckpt",
        inputs.device, log, key=key,
    )  # fmt: skip
    return scorer, result.history


def _scorable(scorer, pairs: list[PairExample]) -> list[PairExample]:
    """The pairs a scorer can score: all, but for the oracle those of known quality."""
    if not hasattr(scorer, "knows"):
        return pairs
    known = [
        p for p in pairs if scorer.knows(p.image, p.chosen) and scorer.knows(p.image, p.rejected)
    ]
    if not known:
        raise ValueError("oracle scorer: no held-out pair has known quality on both sides")
    return known


def _baseline_accuracy(scorer, spec: ScorerSpec, val: list[PairExample]) -> float | None:
    """CLIPScore on the same CLIP towers, on the same held-out pairs (clip backends)."""
    baseline = get_backend(spec.backend).clipscore_baseline
    return None if baseline is None else pair_accuracy(baseline(scorer), val)


def run_score_model(
    cfg: PipelineConfig, version: str, store: ArtifactStore, log=print
) -> ScoreModelReport | None:
    """Train or register `version` on every materialized batch's pairs; write its folder.

    Under torchrun every rank trains and rank 0 alone measures and writes: the others get None.
    """
    spec = spec_for(cfg, version)  # the whole config: registry checkpoints are scorers too
    device = resolve_device(cfg.compute.device)
    data = load_pair_data(store)
    if not data.val:
        raise ValueError("no validation pairs: raise pairs.val_fraction or ingest more images")
    workdir = Path(cfg.storage.work_dir) / SCORE_MODEL_ASSET / version
    inputs = BuildInputs(spec=spec, data=data, device=device, store=store)
    key = training_key(spec, data)
    scorer, history = _build(inputs, workdir, log, key)
    if not distributed.world().is_main:
        return None
    val_acc = pair_accuracy(scorer, _scorable(scorer, data.val))
    baseline = _baseline_accuracy(scorer, spec, data.val)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        save_scorer(scorer, spec, out)
        metrics = {"val_pairwise_accuracy": val_acc, "clipscore_val_pairwise_accuracy": baseline,
                   "train_pairs": len(data.train), "val_pairs": len(data.val),
                   "batches": data.batches, "history": history}  # fmt: skip
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        digest = weights_digest(out) if any(out.glob("*.safetensors")) else "none"
        store.fs.put(str(out) + "/", store.path(model_dir(version)) + "/", recursive=True)
    _snapshots(workdir, key).clear()  # saved: a later materialization trains afresh
    return ScoreModelReport(
        version, spec.backend, val_acc, baseline, len(data.train), len(data.val), data.batches,
        store.url(model_dir(version)), digest, history,
    )  # fmt: skip
