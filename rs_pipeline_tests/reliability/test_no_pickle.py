"""Every checkpoint loader reads what the project's own savers write with unpickling forbidden."""

from __future__ import annotations

import pickle

import pytest
import torch

from rs_pipeline.core.config import ScorerSpec
from rs_pipeline.core.models.clip import build_clip, load_clip_weights, save_clip_weights
from rs_pipeline.core.scoring.backends import load_scorer, save_scorer
from rs_pipeline.core.scoring.baselines import ClipScoreScorer, RandomScorer
from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.scoring.qwen2vl_reward import build_reward_scorer
from rs_pipeline.core.vlm.sft import apply_lora
from rs_pipeline.core.vlm.weights import build_base, load_vlm, save_vlm


class Unpickled(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise Unpickled("a checkpoint loader unpickled")


class _NoUnpickler:
    def __init__(self, *args, **kwargs):
        _refuse()


@pytest.fixture
def no_pickle(monkeypatch):
    """Forbid every unpickling path a loader could take: pickle's and torch.load."""
    import peft  # noqa: F401  imported before the ban: loaders import them lazily
    import transformers  # noqa: F401

    def ban() -> None:
        for module, name in [(pickle, "load"), (pickle, "loads"), (torch, "load"),
                             (torch.serialization, "load")]:  # fmt: skip
            monkeypatch.setattr(module, name, _refuse)
        monkeypatch.setattr(pickle, "Unpickler", _NoUnpickler)

    return ban


def test_the_ban_does_refuse_pickled_checkpoints(tmp_path, no_pickle):
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    no_pickle()
    with pytest.raises(Unpickled):
        torch.load(tmp_path / "w.pt")


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _clip_head() -> tuple:
    return ClipHeadScorer(seed=0), ScorerSpec(name="h", backend="clip_head")


def _clipscore() -> tuple:
    scorer = ClipScoreScorer.from_clip_head(ClipHeadScorer(seed=0))
    return scorer, ScorerSpec(name="c", backend="clipscore")


def _qwen2vl_reward() -> tuple:
    spec = ScorerSpec(name="q", backend="qwen2vl_reward", seed=0)
    return build_reward_scorer(spec), spec


def _random() -> tuple:
    return RandomScorer(3), ScorerSpec(name="r", backend="random", seed=3)


@pytest.mark.parametrize("build", [_clip_head, _clipscore, _qwen2vl_reward, _random])
def test_scorer_checkpoints_load_without_unpickling(build, tmp_path, no_pickle):
    scorer, spec = build()
    save_scorer(scorer, spec, tmp_path)
    no_pickle()
    loaded = load_scorer(tmp_path)
    assert loaded.backend == scorer.backend
    if isinstance(scorer, torch.nn.Module):
        assert _same(_params(loaded), _params(scorer))


def test_clip_weights_load_without_unpickling(tmp_path, no_pickle):
    model, *_ = build_clip("rs-resnet-tiny-64", 0)
    path = save_clip_weights(model, tmp_path / "clip.safetensors")
    other, *_ = build_clip("rs-resnet-tiny-64", 1)
    no_pickle()
    load_clip_weights(other, path)
    assert _same(_params(other), _params(model))


@pytest.mark.parametrize("lora", [False, True])
def test_vlm_checkpoints_load_without_unpickling(lora, tmp_path, no_pickle):
    model, processor = build_base("tiny", seed=0)
    if lora:
        model = apply_lora(model, seed=0)
    save_vlm(model, processor, tmp_path, meta={"base_model": "tiny", "seed": 0})
    no_pickle()
    loaded, _ = load_vlm(tmp_path)
    assert _same(_params(loaded), _params(model))
