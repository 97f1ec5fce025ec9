"""The `score_model` stage: train (or register) one scorer version and measure it."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig, ScorerSpec
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.scoring.data import PairData, load_pair_data
from rs_pipeline.core.scoring.train import (
    PairExample,
    StagePlan,
    TrainPlan,
    train_scorer,
)
from rs_pipeline.core.scoring.versions import spec_for, weights_digest
from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive

ASSET = "score_model"


def model_dir(version: str) -> str:
    """Folder of one scorer version under the artifact root."""
    return f"{ASSET}/version={version}"


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


def _warm_clip(spec: ScorerSpec, data: PairData, device: str):
    """The CLIP both clip backends start from: given weights, or a contrastive warm start."""
    from rs_pipeline.core.models.clip import build_clip, load_clip_weights

    model, preprocess_train, _, tokenizer = build_clip(spec.clip_model, spec.seed)
    if spec.clip_weights:
        load_clip_weights(model, spec.clip_weights)
    elif spec.warm_start_steps:
        plan = ContrastivePlan(steps=spec.warm_start_steps, seed=spec.seed,
                               lock_text=spec.warm_start_lock_text)  # fmt: skip
        train_contrastive(model, preprocess_train, tokenizer, data.pool, plan, device)
    return model


def _build(spec: ScorerSpec, data: PairData, device: str, workdir: Path, log, store):
    """The scorer of a spec, trained where it learns; plus its training history."""
    from rs_pipeline.core.scoring.baselines import ClipScoreScorer, RandomScorer
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    if spec.backend == "random":
        return RandomScorer(spec.seed), []
    if spec.backend == "oracle":
        from rs_pipeline.core.scoring.oracle import OracleScorer

        return OracleScorer.from_store(store, data.batches), []
    if spec.backend == "qwen2vl_reward":
        from rs_pipeline.core.scoring.qwen2vl_reward import build_reward_scorer

        scorer = build_reward_scorer(spec)  # loads spec.checkpoint when one is registered
        if spec.checkpoint:
            return scorer, []
    elif spec.checkpoint:  # register, do not train
        return ClipHeadScorer.load(spec.checkpoint), []
    else:
        scorer = ClipHeadScorer(clip=spec.clip_model, seed=spec.seed, prior=spec.head_prior)
        scorer.clip.load_state_dict(_warm_clip(spec, data, device).state_dict())
        if spec.backend == "clipscore":
            return ClipScoreScorer.from_clip_head(scorer), []
    plan = TrainPlan(
        stages=tuple(StagePlan(s.stage, s.lr, s.steps, s.warmup_steps) for s in spec.stages),
        batch_size=spec.batch_size,
        grad_clip=spec.grad_clip,
        eval_every=spec.eval_every,
        patience=spec.patience,
        seed=spec.seed,
    )
    result = train_scorer(scorer, data.train, data.val, plan, workdir / "ckpt", device, log)
    return scorer, result.history


def _save(scorer, spec: ScorerSpec, folder: Path) -> None:
    """safetensors + config.json in `folder`, whatever the backend (never pickle)."""
    from rs_pipeline.core.models.clip import save_clip_weights

    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(scorer, "save"):
        scorer.save(folder)
        return
    config = {"backend": scorer.backend, "spec": spec.model_dump(mode="json")}
    if spec.backend == "clipscore":
        save_clip_weights(scorer.model, folder / "clip.safetensors")
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))


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
    from rs_pipeline.core.scoring.baselines import ClipScoreScorer

    if spec.backend == "clipscore":
        return pair_accuracy(scorer, val)
    if hasattr(scorer, "clip") and hasattr(scorer, "tokenizer"):
        return pair_accuracy(ClipScoreScorer.from_clip_head(scorer), val)
    return None


def run_score_model(
    cfg: PipelineConfig, version: str, store: ArtifactStore, log=print
) -> ScoreModelReport:
    """Train or register `version` on every materialized batch's pairs; write its folder."""
    spec = spec_for(cfg, version)  # the whole config: registry checkpoints are scorers too
    device = resolve_device(cfg.compute.device)
    data = load_pair_data(store)
    if not data.val:
        raise ValueError("no validation pairs: raise pairs.val_fraction or ingest more images")
    workdir = Path(cfg.storage.work_dir) / ASSET / version
    scorer, history = _build(spec, data, device, workdir, log, store)
    val_acc = pair_accuracy(scorer, _scorable(scorer, data.val))
    baseline = _baseline_accuracy(scorer, spec, data.val)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        _save(scorer, spec, out)
        metrics = {"val_pairwise_accuracy": val_acc, "clipscore_val_pairwise_accuracy": baseline,
                   "train_pairs": len(data.train), "val_pairs": len(data.val),
                   "batches": data.batches, "history": history}  # fmt: skip
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        digest = weights_digest(out) if any(out.glob("*.safetensors")) else "none"
        store.fs.put(str(out) + "/", store.path(model_dir(version)) + "/", recursive=True)
    return ScoreModelReport(
        version, spec.backend, val_acc, baseline, len(data.train), len(data.val), data.batches,
        store.url(model_dir(version)), digest, history,
    )  # fmt: skip
