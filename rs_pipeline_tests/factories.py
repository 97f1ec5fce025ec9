"""Small builders shared by tests: configs in a temp folder, encoded images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_config(tmp_path: Path, **sections) -> str:
    """A YAML config on the tiny preset, with storage under tmp_path; returns its path."""
    data = {
        "preset": "tiny",
        "storage": {
            "root": str(tmp_path / "artifacts"),
            "lineage_db": str(tmp_path / "lineage.duckdb"),
        },
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def noise_rgb(size: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), mode="RGB")
