"""Seeds and uniform draws from a stable hash of their parts: the one recipe for seeded choices.

sha256 of the parts' `str` joined by `sep`, its first 8 bytes read big-endian. Python's
`hash()` is salted per process, so it cannot give the same draw on every machine and run.
Call sites differ only in separator and width, kept as each was first written: changing one
would move tiles, captions, questions or splits. Base floor of `core`: imports nothing from it.
"""

from __future__ import annotations

import hashlib


def seed_from(*parts: object, sep: str = "\x1f", bits: int = 64) -> int:
    """The low `bits` bits of the 64-bit big-endian prefix of sha256(sep.join(map(str, parts)))."""
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be in [1, 64], got {bits}")
    digest = hashlib.sha256(sep.join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << bits) - 1)


def unit_from(*parts: object, sep: str = "\x1f") -> float:
    """`seed_from(*parts, sep=sep) / 2**64`: uniform in [0, 1] for seeded draws by threshold.

    Rounding to a float reaches 1.0 for the top 2**-54 of hashes; kept, since stopping it would
    move existing draws, and a threshold draw `u < p` then simply fails, as for u near 1.
    """
    return seed_from(*parts, sep=sep) / 2.0**64
