"""SFT of the tiny Qwen2-VL: reply-only labels, frozen vision, LoRA, checkpoints, exact resume."""

from __future__ import annotations

import socket

import pytest
import torch

from rs_pipeline.core.models.qwen2vl import IM_END
from rs_pipeline.core.training.snapshots import Snapshots
from rs_pipeline.core.vlm.chat import prompt_text, reply_text
from rs_pipeline.core.vlm.sft import (
    IGNORE,
    SFTPlan,
    apply_lora,
    encode_batch,
    train_sft,
    vision_tower,
)
from rs_pipeline.core.vlm.weights import META_FILE, build_base, load_vlm, save_vlm, uses_lora
from rs_pipeline_tests.factories import noise_rgb

PLAN = SFTPlan(steps=6, batch_size=2, lr=1e-3, warmup_ratio=0.2, seed=3)


class _Crash(Exception):
    pass


class CrashAfterFirstSnapshot(Snapshots):
    """Writes its snapshot, then dies: a pod evicted mid-training."""

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        raise _Crash


def _examples():
    # Different image sizes and answer lengths, so rows differ in image tokens and padding.
    return [
        (noise_rgb(56 + 16 * i, seed=i), f"What is in tile {i}?", f"A harbor with {i} ships.")
        for i in range(4)
    ]


def _vision(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vision_tower(model)[1].state_dict().items()}


def _logits(model, processor) -> torch.Tensor:
    image, question, _ = _examples()[1]
    inputs = processor(text=[prompt_text(processor, question)], images=[image], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits  # (1, T, V)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def full_run():
    model, processor = build_base("tiny", seed=0)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    losses = train_sft(model, processor, _examples(), PLAN)
    return model, processor, losses, before


@pytest.fixture(scope="module")
def lora_run():
    model, processor = build_base("tiny", seed=0)
    model = apply_lora(model, rank=4, alpha=8)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    losses = train_sft(model, processor, _examples(), PLAN)
    return model, processor, losses, before


def test_loss_decreases_when_overfitting_a_tiny_set(full_run):
    _, _, losses, _ = full_run
    assert len(losses) == PLAN.steps
    assert losses[-1] < losses[0] - 0.3


def test_full_fine_tuning_leaves_the_vision_tower_unchanged(full_run):
    model, _, _, before = full_run
    after = model.state_dict()
    vision, _ = vision_tower(model)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed, "nothing trained"
    assert not {k for k in changed if k.startswith(vision + ".")}
    assert all(not p.requires_grad for p in vision_tower(model)[1].parameters())


def test_only_reply_tokens_carry_labels():
    _, processor = build_base("tiny", seed=0)
    examples = _examples()[:2]
    prompts = [prompt_text(processor, q) for _, q, _ in examples]
    replies = [reply_text(processor, a) for _, _, a in examples]
    batch = encode_batch(processor, [im for im, _, _ in examples], prompts, replies)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert (mask == 0).any(), "the rows should differ in length, so one is padded"
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    for i, (_, _, answer) in enumerate(examples):
        learned = ids[i][labels[i] != IGNORE]
        assert tok.decode(learned) == f"{answer}{IM_END}\n"
        assert (labels[i][ids[i] == image_id] == IGNORE).all()
        assert (labels[i][mask[i] == 0] == IGNORE).all()
        # the learned tokens are one contiguous span: the reply right after the prompt
        where = (labels[i] != IGNORE).nonzero().flatten()
        assert where.tolist() == list(range(int(where[0]), int(where[-1]) + 1))


def test_lora_trains_only_the_adapters_of_the_language_model(lora_run):
    model, _, _, before = lora_run
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert not [n for n in trainable if ".visual." in n or "lm_head" in n]
    assert {n.split(".")[-4] for n in trainable} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all("lora_" in k for k in changed)


def test_lora_adapters_saved_and_reloaded_give_the_same_logits(lora_run, tmp_path, monkeypatch):
    model, processor, _, _ = lora_run
    save_vlm(model, processor, tmp_path, meta={"base_model": "tiny", "seed": 0})
    names = {p.name for p in tmp_path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", META_FILE} <= names
    assert not {n for n in names if n.startswith("model") or n.endswith((".bin", ".pt"))}
    _no_network(monkeypatch)
    loaded, loaded_processor = load_vlm(tmp_path)
    assert not loaded.training
    expected = _logits(model.eval(), processor)
    assert torch.allclose(_logits(loaded, loaded_processor), expected, atol=1e-6, rtol=0)
    # and the adapters matter: the bare base answers differently
    base, _ = build_base("tiny", seed=0)
    assert not torch.allclose(_logits(base.eval(), processor), expected, atol=1e-4)


def test_full_fine_tune_saved_and_reloaded_gives_the_same_logits(full_run, tmp_path, monkeypatch):
    model, processor, _, _ = full_run
    save_vlm(model, processor, tmp_path, meta={"base_model": "tiny", "seed": 0, "adapter": False})
    _no_network(monkeypatch)
    loaded, loaded_processor = load_vlm(tmp_path)
    assert not loaded.training
    expected = _logits(model.eval(), processor)
    assert torch.allclose(_logits(loaded, loaded_processor), expected, atol=1e-6, rtol=0)


def test_tiny_base_rebuilds_identically_from_its_seed():
    (a, _), (b, _), (c, _) = (build_base("tiny", seed=s) for s in (5, 5, 6))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def _train(snapshots=None, every=0, log=None):
    model, processor = build_base("tiny", seed=0)
    model = apply_lora(model, rank=4, alpha=8, seed=1)
    losses = train_sft(
        model, processor, _examples(), PLAN, log=log, snapshots=snapshots, snapshot_every=every
    )
    return model, losses


def test_resumed_run_matches_an_uninterrupted_run(tmp_path):
    straight, straight_losses = _train()
    with pytest.raises(_Crash):
        _train(CrashAfterFirstSnapshot(tmp_path, key="plan-a"), every=3)
    messages = []
    resumed, losses = _train(Snapshots(tmp_path, key="plan-a"), 3, messages.append)
    assert "sft: resumed at step 3/6" in messages
    assert losses == straight_losses
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_snapshots_hold_only_the_trainable_parameters(tmp_path):
    from safetensors.torch import load_file

    _train(Snapshots(tmp_path, key="plan-a"), every=6)
    weights = [k for k in load_file(tmp_path / "snapshot.safetensors") if k.startswith("model.")]
    assert weights and all("lora_" in k for k in weights)


def test_no_examples_is_a_clear_error():
    model, processor = build_base("tiny", seed=0)
    with pytest.raises(ValueError, match="at least one"):
        train_sft(model, processor, [], PLAN)


def test_lora_is_used_on_local_checkpoints_unless_told_otherwise():
    assert not uses_lora("tiny", "auto") and uses_lora("/models/qwen2-vl", "auto")
    assert uses_lora("tiny", "always") and not uses_lora("/models/qwen2-vl", "never")
    with pytest.raises(ValueError, match="vlm.lora"):
        uses_lora("tiny", "sometimes")


def test_checkpoint_errors_say_what_is_missing(tmp_path, full_run):
    model, processor, _, _ = full_run
    with pytest.raises(ValueError, match="base_model"):
        save_vlm(model, processor, tmp_path, meta={"seed": 0})
    with pytest.raises(ValueError, match="adapter"):
        save_vlm(model, processor, tmp_path, meta={"base_model": "tiny", "seed": 0, "adapter": 1})
    with pytest.raises(FileNotFoundError, match=META_FILE):
        load_vlm(tmp_path)
    with pytest.raises(FileNotFoundError, match="vlm.model"):
        build_base(str(tmp_path / "absent"), seed=0)
