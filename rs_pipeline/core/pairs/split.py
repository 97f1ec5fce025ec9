"""Train/validation split by image, and by spatial block for geo-referenced images.

Deterministic from ids alone, so a sample lands in the same split in every batch and run;
neighbouring geo-referenced tiles share a block and therefore a split (no spatial leakage).
"""

from __future__ import annotations

import math

from rs_pipeline.core.seeds import unit_from


def split_key(sample_id: str, lat: float | None, lon: float | None, block_deg: float) -> str:
    """The unit that is assigned as a whole: a spatial block, or the image itself."""
    if lat is None or lon is None:
        return f"image:{sample_id}"
    return f"block:{math.floor(lat / block_deg)}:{math.floor(lon / block_deg)}"


def assign_split(key: str, val_fraction: float, seed: int = 0) -> str:
    """`val` for about `val_fraction` of keys, `train` otherwise."""
    return "val" if unit_from(seed, key, sep="|") < val_fraction else "train"
