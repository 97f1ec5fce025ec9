"""Train/validation split by image, and by spatial block for geo-referenced images.

Deterministic from ids alone, so a sample lands in the same split in every batch and run;
neighbouring geo-referenced tiles share a block and therefore a split (no spatial leakage).
"""

from __future__ import annotations

import hashlib
import math


def split_key(sample_id: str, lat: float | None, lon: float | None, block_deg: float) -> str:
    """The unit that is assigned as a whole: a spatial block, or the image itself."""
    if lat is None or lon is None:
        return f"image:{sample_id}"
    return f"block:{math.floor(lat / block_deg)}:{math.floor(lon / block_deg)}"


def assign_split(key: str, val_fraction: float, seed: int = 0) -> str:
    """`val` for about `val_fraction` of keys, `train` otherwise."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "val" if u < val_fraction else "train"
