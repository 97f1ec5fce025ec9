"""ClipHeadScorer: positive per-pair scores, clean training stages, lossless save/load, learns."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rs_pipeline.core.scoring.base import Scorer, TrainableScorer
from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.scoring.loss import bradley_terry_loss, pairwise_accuracy
from rs_pipeline.core.sources.synthrs import render_tile

CLASSES = ("forest", "lake", "desert", "residential")


@pytest.fixture(scope="module")
def scorer() -> ClipHeadScorer:
    return ClipHeadScorer(seed=0).eval()


@pytest.fixture(scope="module")
def tiles() -> list:
    return [render_tile(seed, CLASSES[seed % len(CLASSES)])[0] for seed in range(6)]


def _caption(cls: str) -> str:
    return f"a satellite image of {cls.replace('_', ' ')}"


def test_it_implements_the_scorer_protocols(scorer):
    assert isinstance(scorer, Scorer) and isinstance(scorer, TrainableScorer)
    assert scorer.backend == "clip_head"


def test_forward_gives_one_positive_score_per_pair(scorer, tiles):
    batch = scorer.prepare(tiles, [_caption(c) for c in CLASSES + CLASSES[:2]])
    assert batch["pixel_values"].shape == (6, 3, 64, 64)
    assert batch["input_ids"].shape == (6, 32)
    with torch.no_grad():
        scores = scorer(**batch)
    assert scores.shape == (6,)
    assert bool((scores > 0).all())


def test_score_keeps_input_order_across_batch_sizes(scorer, tiles):
    texts = [_caption(c) for c in ("lake", "forest", "beach", "river", "desert", "harbor")]
    forward = scorer.score(tiles, texts, batch_size=4)
    backward = scorer.score(tiles[::-1], texts[::-1], batch_size=64)
    assert forward == pytest.approx(backward[::-1], abs=1e-5)
    assert all(isinstance(s, float) for s in forward)
    assert scorer.score([], []) == []


def test_a_question_is_prepended_and_never_crowds_out_the_answer(scorer, tiles):
    plain = scorer.prepare(tiles[:1], ["two tanks"])["input_ids"]
    asked = scorer.prepare(tiles[:1], ["two tanks"], ["how many tanks?"])["input_ids"]
    assert not torch.equal(plain, asked)
    answer = scorer.tokenizer.encode("A: two tanks")
    long = scorer.prepare(tiles[:1], ["two tanks"], ["how many " * 50 + "tanks?"])["input_ids"][0]
    end = int((long == scorer.tokenizer.eot_token_id).nonzero()[0])
    assert long[end - len(answer) : end].tolist() == answer
    with pytest.raises(ValueError, match="questions"):
        scorer.prepare(tiles[:2], ["a", "b"], ["only one?"])


def test_stages_split_towers_and_share_the_head(scorer):
    ids = {s: {id(p) for p in scorer.stage_parameters(s)} for s in ("head", "vision", "text")}
    visual = {id(p) for p in scorer.clip.visual.parameters()}
    assert ids["head"] == {id(p) for p in scorer.head.parameters()}
    assert ids["vision"] & ids["text"] == ids["head"]
    assert not ids["text"] & visual
    assert ids["vision"] - ids["head"] == visual
    assert id(scorer.clip.token_embedding.weight) in ids["text"]
    assert id(scorer.clip.text_projection) in ids["text"]
    with pytest.raises(ValueError, match="'head', 'vision' or 'text'"):
        scorer.stage_parameters("all")


@pytest.mark.parametrize("stage", ["head", "vision", "text"])
def test_gradients_reach_only_the_selected_stage(stage, tiles):
    model = ClipHeadScorer(seed=0).train()
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = {id(p) for p in model.stage_parameters(stage)}
    for p in model.stage_parameters(stage):
        p.requires_grad_(True)
    batch = model.prepare(tiles[:4], [_caption(c) for c in CLASSES])
    model(**batch).sum().backward()
    touched = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched <= chosen
    tower = touched - {id(p) for p in model.head.parameters()}
    if stage == "head":
        assert not tower and not any(p.grad is not None for p in model.clip.parameters())
    else:
        assert tower  # the tower itself learns, not just the head


def test_a_frozen_resnet_tower_keeps_its_batchnorm_statistics(tiles):
    model = ClipHeadScorer(seed=0).train()
    for p in model.parameters():
        p.requires_grad_(p in set(model.stage_parameters("head")))
    before = model.clip.visual.bn1.running_mean.clone()
    with torch.no_grad():
        model(**model.prepare(tiles[:4], ["x"] * 4))
    assert torch.equal(model.clip.visual.bn1.running_mean, before)


def test_save_and_load_give_identical_scores(scorer, tiles, tmp_path):
    texts = [_caption(c) for c in CLASSES + CLASSES[:2]]
    scorer.save(tmp_path / "scorer")
    assert sorted(p.name for p in (tmp_path / "scorer").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((tmp_path / "scorer" / "config.json").read_text())
    assert config == scorer.config_dict() and config["backend"] == "clip_head"
    loaded = ClipHeadScorer.load(tmp_path / "scorer")
    assert loaded.score(tiles, texts) == scorer.score(tiles, texts)


def test_loading_an_incomplete_folder_says_what_to_provide(tmp_path):
    with pytest.raises(FileNotFoundError, match="ClipHeadScorer.save"):
        ClipHeadScorer.load(tmp_path)


def _pairs(seeds: range) -> list[tuple]:
    """(tile, its class caption, another class's caption), seeded."""
    out = []
    for seed in seeds:
        cls = CLASSES[seed % len(CLASSES)]
        wrong = random.Random(seed).choice([c for c in CLASSES if c != cls])
        out.append((render_tile(seed, cls)[0], _caption(cls), _caption(wrong)))
    return out


def _accuracy(model: ClipHeadScorer, pairs: list[tuple]) -> float:
    images = [p[0] for p in pairs]
    chosen = model.score(images, [p[1] for p in pairs])
    rejected = model.score(images, [p[2] for p in pairs])
    return pairwise_accuracy(torch.tensor(chosen), torch.tensor(rejected))


def test_a_few_dozen_bradley_terry_steps_learn_right_class_over_wrong():
    # Seeded: 64 train / 64 held-out pairs over 4 classes, vision stage, 24 steps of 16 pairs.
    # Observed: held-out accuracy 0.55 -> 1.00 (seeds 1, 2: 0.56 -> 0.97, 0.47 -> 1.00), ~3 s on
    # 2 CPU cores; without recalibrate_norms only 0.70 / 0.72 / 0.89.
    train, held_out = _pairs(range(64)), _pairs(range(1000, 1064))
    model = ClipHeadScorer(seed=0)
    before = _accuracy(model, held_out)
    for p in model.parameters():
        p.requires_grad_(False)
    params = model.stage_parameters("vision")
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-3)
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(24):
        batch = [train[i] for i in torch.randperm(len(train), generator=order)[:16].tolist()]
        images = [p[0] for p in batch] * 2
        scores = model(**model.prepare(images, [p[1] for p in batch] + [p[2] for p in batch]))
        loss = bradley_terry_loss(scores[:16], scores[16:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    # BatchNorm running statistics lag 24 fast steps; re-estimate them before eval-mode scoring.
    model.recalibrate_norms([p[0] for p in train])
    after = _accuracy(model, held_out)
    assert after >= 0.8 and after > before + 0.2, (before, after)
