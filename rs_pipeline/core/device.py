"""The compute device: `auto` picks CUDA when present, else the CPU."""

from __future__ import annotations


def resolve_device(setting: str) -> str:
    """`cpu`, `cuda`, or `auto`; asking for CUDA without a GPU fails with the fix."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compute.device is `cuda` but no GPU is visible; set `auto` or `cpu`")
    return setting
