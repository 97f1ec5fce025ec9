"""Offline Qwen2-VL: in-process tokenizer, tiny seeded model, local-folder save and load."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from rs_pipeline.core.models.qwen2vl import (
    IM_END,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    TinyQwen2VLSpec,
    build_tiny_qwen2vl,
    caption_csv_sentences,
    default_tokenizer_corpus,
    load_qwen2vl,
    save_pretrained_offline,
    train_tokenizer,
)
from rs_pipeline.core.sources.synthrs import render_tile

REAL_CAPTIONS = sorted((Path(__file__).parents[3] / ".." / "shared/data/rs_captions").glob("*.csv"))
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]


@pytest.fixture(scope="module")
def tokenizer():
    # Real RS captions, when present beside the repo, make the vocabulary realistic.
    return train_tokenizer(default_tokenizer_corpus() + caption_csv_sentences(REAL_CAPTIONS))


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return build_tiny_qwen2vl(TinyQwen2VLSpec(), tokenizer)


def _inputs(processor, size: int = 64):
    prompt = processor.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    image = render_tile(3, "harbor", size)[0]
    return processor(text=[prompt], images=[image], return_tensors="pt")


def test_tokenizer_round_trips_rs_text(tokenizer):
    texts = [
        "Many buildings and green trees are around a playground.",
        "There are 3 white ships at the top left of the harbor; one is grey.",
        "An unseen word: photovoltaic, ünïcode & digits 12345\nnew line",
    ]
    for text in texts:
        assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_special_tokens_stay_atomic_and_vanish_on_skip(tokenizer):
    for token in SPECIAL_TOKENS:
        assert len(tokenizer(token).input_ids) == 1, token
    text = f"a lake{IM_END}<|vision_start|><|image_pad|><|vision_end|>"
    ids = tokenizer(text).input_ids
    for token in (IM_END, "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"):
        assert tokenizer.convert_tokens_to_ids(token) in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a lake"


def test_pad_is_not_end_of_turn(tokenizer, tiny):
    model, _ = tiny
    assert tokenizer.pad_token == PAD_TOKEN and tokenizer.eos_token == IM_END
    assert tokenizer.pad_token_id != tokenizer.convert_tokens_to_ids(IM_END)
    assert model.config.text_config.pad_token_id == tokenizer.pad_token_id
    assert model.config.text_config.eos_token_id == tokenizer.convert_tokens_to_ids(IM_END)
    assert tokenizer.convert_tokens_to_ids(IM_END) in model.generation_config.eos_token_id


def test_chat_template_is_qwen2vl_format(tiny):
    _, processor = tiny
    turns = MESSAGES + [{"role": "assistant", "content": "A harbor."}]
    text = processor.apply_chat_template(turns, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>\n"
        "<|im_start|>assistant\nA harbor.<|im_end|>\n"
    )
    prompt = processor.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_forward_and_generate_on_a_64px_image(tokenizer, tiny):
    model, processor = tiny
    inputs = _inputs(processor)
    # 64x64 -> 56x56 -> 16 patches -> 4 merged image tokens, flagged 1 in mm_token_type_ids.
    assert inputs["mm_token_type_ids"].sum().item() == 4
    assert tuple(inputs["image_grid_thw"][0].tolist()) == (1, 4, 4)
    with torch.inference_mode():
        logits = model(**inputs).logits  # (1, T, V)
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)  # (1, T + new)
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()
    assert inputs["input_ids"].shape[1] < out.shape[1] <= inputs["input_ids"].shape[1] + 5


def test_build_is_seeded(tokenizer):
    a, _ = build_tiny_qwen2vl(TinyQwen2VLSpec(seed=1), tokenizer)
    b, _ = build_tiny_qwen2vl(TinyQwen2VLSpec(seed=1), tokenizer)
    c, _ = build_tiny_qwen2vl(TinyQwen2VLSpec(seed=2), tokenizer)
    wa, wb, wc = (m.lm_head.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_save_then_load_reproduces_logits(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, processor = tiny
    folder = save_pretrained_offline(model, processor, tmp_path / "ckpt")
    names = {p.name for p in folder.iterdir()}
    assert "config.json" in names and "model.safetensors" in names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    loaded, loaded_processor = load_qwen2vl(folder, device="cpu")
    inputs, reloaded_inputs = _inputs(processor), _inputs(loaded_processor)
    for key in inputs:
        assert torch.equal(inputs[key], reloaded_inputs[key]), key
    with torch.inference_mode():
        assert torch.equal(model(**inputs).logits, loaded(**reloaded_inputs).logits)
    assert loaded_processor.tokenizer.pad_token_id == processor.tokenizer.pad_token_id


def test_missing_checkpoint_says_what_to_provide_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for missing in (tmp_path / "absent", "Qwen/Qwen2-VL-2B-Instruct"):
        with pytest.raises(FileNotFoundError, match="config.json.*safetensors"):
            load_qwen2vl(missing)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"lacks \*\.safetensors weights, tokenizer"):
        load_qwen2vl(partial)


def test_the_model_layer_never_imports_a_data_source():
    import ast

    from rs_pipeline.core.models import qwen2vl

    tree = ast.parse(Path(qwen2vl.__file__).read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in modules if m.startswith("rs_pipeline.core.sources")}
