"""Base models and SFT checkpoints: the seeded tiny Qwen2-VL or a local folder, adapters or not.

A LoRA checkpoint holds the adapters alone (safetensors) and is rebuilt onto its base, which
must therefore be reproducible: a local folder, or the tiny model from its seed. A full
checkpoint holds every weight. Either way `rs_vlm.json`, written last, marks it complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rs_pipeline.core.models.qwen2vl import (
    TinyQwen2VLSpec,
    build_tiny_qwen2vl,
    default_tokenizer_corpus,
    load_qwen2vl,
    save_pretrained_offline,
    train_tokenizer,
)

TINY = "tiny"
META_FILE = "rs_vlm.json"  # written last: the marker of a complete checkpoint
LORA_MODES = ("auto", "always", "never")
_PEFT_MISSING = "LoRA needs peft: pip install peft (or set vlm.lora: never)"


def build_base(model: str, *, seed: int, device: str = "cpu"):
    """(model, processor) to fine-tune: `tiny` (built from `seed`) or a local checkpoint folder.

    A folder's weights are fixed; `seed` only shapes the tiny model's random init.
    """
    if model == TINY:
        tokenizer = train_tokenizer(default_tokenizer_corpus())  # deterministic BPE
        net, processor = build_tiny_qwen2vl(TinyQwen2VLSpec(seed=seed), tokenizer)
        return net.to(device), processor
    try:
        return load_qwen2vl(model, device)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"vlm.model {model!r}: set it to `tiny` or {err}") from err


def uses_lora(model_name: str, lora: str) -> bool:
    """Whether SFT trains LoRA adapters: `always`, `never`, or `auto` (any model but tiny)."""
    if lora not in LORA_MODES:
        raise ValueError(f"vlm.lora must be one of {list(LORA_MODES)}, got {lora!r}")
    return lora == "always" or (lora == "auto" and model_name != TINY)


def is_adapter_model(model: torch.nn.Module) -> bool:
    """Whether `model` is a peft model (adapters over a frozen base)."""
    return hasattr(model, "peft_config")


def save_vlm(model: torch.nn.Module, processor, folder: str | Path, *, meta: dict) -> None:
    """Write a checkpoint to a local folder: LoRA adapters or full weights, processor files,
    then `rs_vlm.json` = meta (with `adapter` set to what was saved)."""
    missing = sorted({"base_model", "seed"} - set(meta))
    if missing:
        raise ValueError(f"save_vlm meta lacks {missing}: load_vlm rebuilds the base from them")
    adapter = is_adapter_model(model)
    if meta.get("adapter", adapter) != adapter:
        raise ValueError(f"meta says adapter={meta['adapter']} but the model is adapter={adapter}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / META_FILE
    marker.unlink(missing_ok=True)  # a crash below must not leave an old marker over new files
    if adapter:
        # save_embedding_layers=False: "auto" may look the base's name up on a model hub
        model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)
        processor.save_pretrained(out)
    else:
        save_pretrained_offline(model, processor, out)
    marker.write_text(json.dumps({**meta, "adapter": adapter}, indent=2, sort_keys=True))


def read_meta(folder: str | Path) -> dict:
    """The checkpoint's `rs_vlm.json`; FileNotFoundError when the folder is incomplete."""
    marker = Path(folder) / META_FILE
    if not marker.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} is no complete VLM checkpoint ({META_FILE} missing): "
            "re-materialize vlm_checkpoints for its selection"
        )
    return json.loads(marker.read_text())


def load_vlm(folder: str | Path, *, device: str = "cpu"):
    """(model, processor) of a checkpoint written by save_vlm, in eval mode on `device`."""
    meta = read_meta(folder)
    if not meta["adapter"]:
        return load_qwen2vl(folder, device)
    try:
        from peft import PeftModel
    except ImportError as err:
        raise ImportError(_PEFT_MISSING) from err
    from transformers import AutoProcessor

    base, _ = build_base(meta["base_model"], seed=int(meta["seed"]), device=device)
    model = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
    # The processor trained with, as saved; a tiny base's rebuilt one is identical anyway.
    processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    return model.to(device).eval(), processor
