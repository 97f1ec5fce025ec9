"""The SynthRS world's words: scene classes, object kinds, colours, grid positions, numbers.

One home for the vocabulary the SynthRS source draws from, captions and VQA questions state,
the caption oracle reads back, and the tiny VLM's tokenizer is trained on. It sits on the base
floor of `core` and imports nothing from rs_pipeline, so sources, models, captions and pairs
share it without importing each other.

Orders are part of the contract: seeded draws index these tuples (a degrader picks a colour,
the tokenizer corpus cycles through positions), so reordering one changes tiles' captions,
questions and the tiny tokenizer. Append, never reorder.
"""

from __future__ import annotations

SCENE_CLASSES: tuple[str, ...] = (
    "farmland", "forest", "lake", "river", "residential", "industrial",
    "airport", "harbor", "parking_lot", "desert", "beach", "storage_tanks",
)  # fmt: skip
# Countable object kinds, sorted; `storage_tank` is spoken as `storage tank` (see `noun`).
OBJECT_KINDS: tuple[str, ...] = (
    "airplane", "boat", "bridge", "building", "car", "ship", "storage_tank", "tree", "truck",
    "umbrella",
)  # fmt: skip
# Object colour names; the SynthRS palette gives each its exact RGB.
COLOURS: tuple[str, ...] = (
    "red", "white", "grey", "blue", "green", "yellow", "black", "brown", "orange",
)  # fmt: skip
# A tile's 3x3 grid cells by (row, column); an object's position is the cell of its centre.
POSITION_GRID: tuple[tuple[str, str, str], ...] = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
# The same nine cells flat, corners first: the order captions and degraders draw from.
POSITIONS: tuple[str, ...] = (
    "top left", "top right", "bottom left", "bottom right", "top", "bottom", "left", "right",
    "center",
)  # fmt: skip
NUMBER_WORDS: tuple[str, ...] = tuple(
    "zero one two three four five six seven eight nine ten eleven twelve".split()
)


def number_word(n: int) -> str:
    """Number words up to twelve, digits beyond."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def as_words(name: str) -> str:
    """An identifier as text says it: `parking_lot` -> `parking lot`."""
    return name.replace("_", " ")


def noun(kind: str, n: int) -> str:
    """`storage_tank` -> `storage tank`, plural when n != 1."""
    word = as_words(kind)
    return word if n == 1 else word + ("es" if word.endswith("s") else "s")
