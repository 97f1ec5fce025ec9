"""Local VLM captioner over a tiny random Qwen2-VL: order, batching, sampling, seeding."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.captions.vlm import VLMCaptioner
from rs_pipeline.core.models.qwen2vl import (
    TinyQwen2VLSpec,
    build_tiny_qwen2vl,
    default_tokenizer_corpus,
    save_pretrained_offline,
    train_tokenizer,
)
from rs_pipeline.core.sources.synthrs import render_tile


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(default_tokenizer_corpus())


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return build_tiny_qwen2vl(TinyQwen2VLSpec(), tokenizer)


@pytest.fixture(scope="module")
def samples() -> list[SampleView]:
    # Different classes, and one larger tile, so the batch needs left padding.
    tiles = [(0, "farmland", 64), (1, "harbor", 96), (2, "airport", 64)]
    return [
        SampleView(f"s{seed}", render_tile(seed, cls, size)[0], label=cls)
        for seed, cls, size in tiles
    ]


def _captioner(tiny, **kwargs) -> VLMCaptioner:
    model, processor = tiny
    return VLMCaptioner(model, processor, "qwen2vl-tiny", max_new_tokens=8, **kwargs)


def test_one_candidate_per_image_in_input_order(tiny, samples):
    captioner = _captioner(tiny)
    assert captioner.id == "vlm:qwen2vl-tiny@p1"
    out = captioner.caption(samples)
    assert [c.sample_id for c in out] == ["s0", "s1", "s2"]
    assert all(c.captioner_id == captioner.id and c.status == "ok" for c in out)
    assert all(isinstance(c.text, str) and c.text == c.text.strip() for c in out)
    assert captioner.caption(samples[::-1]) == out[::-1]


def test_batched_equals_unbatched_for_greedy(tiny, samples):
    batched = _captioner(tiny, batch_size=3).caption(samples)
    single = _captioner(tiny, batch_size=1).caption(samples)
    assert [c.text for c in batched] == [c.text for c in single]


def test_per_image_two_samples_distinct_candidates(tiny, samples):
    out = _captioner(tiny, per_image=2, batch_size=3).caption(samples)
    assert [c.sample_id for c in out] == ["s0", "s0", "s1", "s1", "s2", "s2"]
    for i in range(0, 6, 2):
        assert out[i].text != out[i + 1].text


def test_same_seed_same_captions(tiny, samples):
    a = _captioner(tiny, per_image=2, seed=7).caption(samples)
    b = _captioner(tiny, per_image=2, seed=7).caption(samples)
    c = _captioner(tiny, per_image=2, seed=8).caption(samples)
    assert a == b
    assert [x.text for x in a] != [x.text for x in c]


def test_empty_generation_is_still_a_candidate(tokenizer, samples):
    model, processor = build_tiny_qwen2vl(TinyQwen2VLSpec(), tokenizer)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # all logits tie; argmax is id 0, <|endoftext|>, an eos
    out = VLMCaptioner(model, processor, "mute").caption(samples)
    assert [(c.sample_id, c.text, c.status) for c in out] == [
        (s.sample_id, "", "ok") for s in samples
    ]


def test_bad_image_fails_alone_and_all_bad_raises(tiny, samples):
    bad = SampleView("bad", Image.new("RGB", (300, 1)))  # aspect ratio > 200: processor refuses
    out = _captioner(tiny, batch_size=4).caption([samples[0], bad, samples[2]])
    assert [(c.sample_id, c.status) for c in out] == [("s0", "ok"), ("bad", "failed"), ("s2", "ok")]
    assert "aspect ratio" in out[1].error and out[1].text == ""
    with pytest.raises(RuntimeError, match="every image failed"):
        _captioner(tiny).caption([bad])


def test_from_pretrained_local_folder(tiny, samples, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_pretrained_offline(*tiny, tmp_path / "qwen2vl-local")
    loaded = VLMCaptioner.from_pretrained(folder, max_new_tokens=8, prompt_version="p2")
    assert loaded.id == "vlm:qwen2vl-local@p2"
    assert [c.text for c in loaded.caption(samples)] == [
        c.text for c in _captioner(tiny).caption(samples)
    ]
