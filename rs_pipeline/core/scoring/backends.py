"""The scorer backends: one record per backend, the only place a backend name is switched on.

Modelled on open_clip's `factory.py`: `BACKENDS` maps each name a config may give
(`ScorerSpec.backend`) to a `ScorerBackend` saying how to build it from a spec and the pairs, how
to save it and load it back, and what the stages must know about it (does the staged trainer
fit it, may a registry checkpoint name it, does it score from the batches' recorded data). The
stage, inference, the registry scan and the config's allowed values all read it; a test keeps
its names equal to `SCORER_BACKENDS`, which lives in the config (a floor below scoring).

Heavy imports (open_clip, transformers) stay inside the functions: listing backends, scanning
the registry or hashing a version loads neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rs_pipeline.core.config import ScorerSpec

if TYPE_CHECKING:
    from rs_pipeline.core.artifacts import ArtifactStore
    from rs_pipeline.core.scoring.base import Scorer
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.scoring.data import PairData

CONFIG_FILE = "config.json"
CLIPSCORE_WEIGHTS = "clip.safetensors"


@dataclass(frozen=True)
class BuildInputs:
    """What building a scorer may read: its spec, the pairs and pool, the device, the store."""

    spec: ScorerSpec
    data: PairData
    device: str
    store: ArtifactStore


@dataclass(frozen=True)
class SavedScorer:
    """A saved scorer folder and its config.json; store and batches for data-reading backends."""

    folder: Path
    config: dict[str, Any]
    store: ArtifactStore | None = None
    batches: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScorerBackend:
    """One backend: how it is built, saved and loaded, and what the stages must know of it."""

    name: str
    build: Callable[[BuildInputs], Scorer]  # constructed, warm-started or registered; untrained
    save: Callable[[Scorer, ScorerSpec, Path], None]  # safetensors + config.json, never pickle
    load: Callable[[SavedScorer], Scorer]  # from a folder `save` wrote (its config.json read)
    learns: bool = False  # the staged trainer fits what `build` returns (but never a checkpoint)
    registrable: bool = False  # a registry checkpoint's config.json may name it (trained weights)
    reads_batch_data: bool = False  # scores from the batches' recorded data, not saved weights
    # CLIPScore on the scorer's own CLIP towers, the baseline its held-out accuracy must beat.
    clipscore_baseline: Callable[[Scorer], Scorer] | None = None


# -- clip backends ------------------------------------------------------------------------------
def _warm_clip(spec: ScorerSpec, data: PairData, device: str):
    """The CLIP both clip backends start from: given weights, or a contrastive warm start."""
    from rs_pipeline.core.models.clip import build_clip, load_clip_weights
    from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive

    model, preprocess_train, _, tokenizer = build_clip(spec.clip_model, spec.seed)
    if spec.clip_weights:
        load_clip_weights(model, spec.clip_weights)
    elif spec.warm_start_steps:
        plan = ContrastivePlan(steps=spec.warm_start_steps, seed=spec.seed,
                               lock_text=spec.warm_start_lock_text)  # fmt: skip
        train_contrastive(model, preprocess_train, tokenizer, data.pool, plan, device=device)
    return model


def _build_clip_head(inputs: BuildInputs) -> ClipHeadScorer:
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    spec = inputs.spec
    if spec.checkpoint:  # register, do not train
        return ClipHeadScorer.load(spec.checkpoint)
    scorer = ClipHeadScorer(clip=spec.clip_model, seed=spec.seed, prior=spec.head_prior)
    scorer.clip.load_state_dict(_warm_clip(spec, inputs.data, inputs.device).state_dict())
    return scorer


def _build_clipscore(inputs: BuildInputs) -> Scorer:
    from rs_pipeline.core.scoring.baselines import ClipScoreScorer

    head = _build_clip_head(inputs)
    if inputs.spec.checkpoint:
        # As before the registry existed: a checkpoint under a clipscore spec registers that
        # clip_head scorer itself (saved, and loaded back, as clip_head).
        return head
    return ClipScoreScorer.from_clip_head(head)


def _clipscore_of_head(scorer: Scorer) -> Scorer:
    from rs_pipeline.core.scoring.baselines import ClipScoreScorer

    return ClipScoreScorer.from_clip_head(scorer)


def _load_clip_head(saved: SavedScorer) -> Scorer:
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    return ClipHeadScorer.load(saved.folder)


def _load_clipscore(saved: SavedScorer) -> Scorer:
    from rs_pipeline.core.scoring.baselines import ClipScoreScorer

    spec = saved.config["spec"]
    return ClipScoreScorer.from_name(
        spec["clip_model"], spec["seed"], saved.folder / CLIPSCORE_WEIGHTS
    )


# -- the other backends ---------------------------------------------------------------------------
def _build_qwen2vl_reward(inputs: BuildInputs) -> Scorer:
    from rs_pipeline.core.scoring.qwen2vl_reward import build_reward_scorer

    return build_reward_scorer(inputs.spec)  # loads spec.checkpoint when one is registered


def _load_qwen2vl_reward(saved: SavedScorer) -> Scorer:
    from rs_pipeline.core.scoring.qwen2vl_reward import Qwen2VLRewardScorer

    return Qwen2VLRewardScorer.load(saved.folder)


def _build_random(inputs: BuildInputs) -> Scorer:
    from rs_pipeline.core.scoring.baselines import RandomScorer

    return RandomScorer(inputs.spec.seed)


def _load_random(saved: SavedScorer) -> Scorer:
    from rs_pipeline.core.scoring.baselines import RandomScorer

    return RandomScorer(saved.config["spec"]["seed"])


def _build_oracle(inputs: BuildInputs) -> Scorer:
    from rs_pipeline.core.scoring.oracle import OracleScorer

    return OracleScorer.from_store(inputs.store, inputs.data.batches)


def _load_oracle(saved: SavedScorer) -> Scorer:
    from rs_pipeline.core.scoring.oracle import OracleScorer

    return OracleScorer.from_store(saved.store, list(saved.batches))


# -- saving ---------------------------------------------------------------------------------------
def _save_own(scorer: Scorer, spec: ScorerSpec, folder: Path) -> None:
    scorer.save(folder)  # learned scorers write their own weights and architecture


def _save_spec(scorer: Scorer, spec: ScorerSpec, folder: Path) -> None:
    """config.json alone: the backend and the spec rebuild an untrained scorer exactly."""
    config = {"backend": scorer.backend, "spec": spec.model_dump(mode="json")}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


def _save_clipscore(scorer: Scorer, spec: ScorerSpec, folder: Path) -> None:
    from rs_pipeline.core.models.clip import save_clip_weights

    save_clip_weights(scorer.model, folder / CLIPSCORE_WEIGHTS)
    _save_spec(scorer, spec, folder)  # config.json last: a folder without it is incomplete


BACKENDS: dict[str, ScorerBackend] = {
    b.name: b
    for b in (
        ScorerBackend("clip_head", build=_build_clip_head, save=_save_own, load=_load_clip_head,
                      learns=True, registrable=True, clipscore_baseline=_clipscore_of_head),
        ScorerBackend("qwen2vl_reward", build=_build_qwen2vl_reward, save=_save_own,
                      load=_load_qwen2vl_reward, learns=True, registrable=True),
        ScorerBackend("clipscore", build=_build_clipscore, save=_save_clipscore,
                      load=_load_clipscore, clipscore_baseline=lambda scorer: scorer),
        ScorerBackend("random", build=_build_random, save=_save_spec, load=_load_random),
        ScorerBackend("oracle", build=_build_oracle, save=_save_spec, load=_load_oracle,
                      reads_batch_data=True),
    )
}  # fmt: skip


def get_backend(name: str | None, *, where: str = "scorer") -> ScorerBackend:
    """The backend of that name; a ValueError naming the allowed ones otherwise."""
    if name not in BACKENDS:
        raise ValueError(
            f"{where}: unknown backend {name!r}; set `backend:` to one of {', '.join(BACKENDS)}"
        )
    return BACKENDS[name]


def registrable_backends() -> tuple[str, ...]:
    """Backends a registry checkpoint may name (baselines have no trained weights)."""
    return tuple(name for name, b in BACKENDS.items() if b.registrable)


def save_scorer(scorer: Scorer, spec: ScorerSpec, folder: str | Path) -> None:
    """safetensors + config.json in `folder`, as the scorer's own backend saves it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    get_backend(scorer.backend).save(scorer, spec, folder)


def load_scorer(
    folder: str | Path, *, store: ArtifactStore | None = None, batches: Sequence[str] = ()
) -> Scorer:
    """Any saved scorer folder, by the backend its config.json names.

    A backend that scores from recorded data (the oracle) reads it from `store` for `batches`.
    """
    folder = Path(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    backend = get_backend(config.get("backend"), where=f"{folder}/{CONFIG_FILE}")
    if backend.reads_batch_data and store is None:
        raise ValueError(
            f"{folder}: backend {backend.name!r} scores from the batches' recorded data; pass "
            "load_scorer(folder, store=..., batches=[...])"
        )
    return backend.load(SavedScorer(folder, config, store, tuple(batches)))
