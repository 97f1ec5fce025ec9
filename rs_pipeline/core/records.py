"""Typed records of the pipeline's tables, with their Arrow schemas beside them.

The Arrow schema is the single source of truth for both the Parquet manifests and the
DuckDB lineage tables (DuckDB creates its tables from it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from enum import StrEnum

import pyarrow as pa


def sample_id_of(data: bytes) -> str:
    """Content address of an image: sha256 of its bytes as read."""
    return hashlib.sha256(data).hexdigest()


class QuarantineReason(StrEnum):
    """Why an input was not admitted; every quarantine row carries one."""

    ZERO_BYTE = "zero_byte"
    UNREADABLE = "unreadable"
    TOO_LARGE_FILE = "too_large_file"
    NOT_AN_IMAGE = "not_an_image"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    DECOMPRESSION_BOMB = "decompression_bomb"
    UNSUPPORTED_MODE = "unsupported_mode"
    ODD_MODE = "odd_mode"  # normalisable, but the policy says quarantine
    PATH_OUTSIDE_ROOT = "path_outside_root"
    NOT_IN_LAYOUT = "not_in_layout"
    UNLISTED_EXTENSION = "unlisted_extension"
    NOT_A_REGULAR_FILE = "not_a_regular_file"  # FIFO, socket, device: opening one may block


class SampleNote(StrEnum):
    """What ingest decided about an admitted image that a reader should know.

    A note never removes the image (that is quarantine's job), so it adds no row and every
    count still reconciles. Each `Sample.notes` entry reads "<note>: <detail>".
    """

    LABEL_CONFLICT = "label_conflict"  # one image under several labels; label set to None
    ANIMATED_FIRST_FRAME = "animated_first_frame"  # several frames; only the first kept
    TRAILING_BYTES_STRIPPED = "trailing_bytes_stripped"  # bytes after a JPEG's EOI dropped
    EXIF_UNREADABLE = "exif_unreadable"  # EXIF present but unparseable; orientation not applied


@dataclass(frozen=True)
class Sample:
    """One unique image of a batch (grain: one row per sample_id per batch)."""

    sample_id: str
    batch: str
    source: str
    source_kind: str
    source_uris: list[str]
    label: str | None
    width: int
    height: int
    orig_width: int
    orig_height: int
    orig_format: str
    orig_mode: str
    normalisation: str  # what was done to reach RGB <= max_side; "" when nothing
    gsd_m: float | None
    sensor: str | None
    lat: float | None
    lon: float | None
    acquisition_date: str | None
    annotation_json: str | None
    captions: list[str]
    # Every label the image was found under, when they disagree (then `label` is None).
    conflicting_labels: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # SampleNote entries, "<note>: <detail>"


@dataclass(frozen=True)
class QuarantineRow:
    """One input that was not admitted, and why (grain: one row per rejected input)."""

    batch: str
    uri: str
    source: str
    source_kind: str
    reason: str
    detail: str
    sample_id: str | None  # None when no bytes could be read


SAMPLE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("batch", pa.string()),
        ("source", pa.string()),
        ("source_kind", pa.string()),
        ("source_uris", pa.list_(pa.string())),
        ("label", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("orig_width", pa.int32()),
        ("orig_height", pa.int32()),
        ("orig_format", pa.string()),
        ("orig_mode", pa.string()),
        ("normalisation", pa.string()),
        ("gsd_m", pa.float64()),
        ("sensor", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("acquisition_date", pa.string()),
        ("annotation_json", pa.string()),
        ("captions", pa.list_(pa.string())),
        ("conflicting_labels", pa.list_(pa.string())),
        ("notes", pa.list_(pa.string())),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("batch", pa.string()),
        ("uri", pa.string()),
        ("source", pa.string()),
        ("source_kind", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("sample_id", pa.string()),
    ]
)

# Normalised RGB images, kept apart from the manifest so the manifest stays light. `data` is the
# original file when it needed no change (JPEG/PNG, RGB, within max_side), else a PNG.
IMAGE_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("format", pa.string()), ("data", pa.binary())]
)


@dataclass(frozen=True)
class CaptionRow:
    """One candidate caption of one image (grain of `caption_candidates`).

    `quality` is the ground-truth quality in [0, 1] where it is known (SynthRS), else None.
    """

    caption_id: str
    batch: str
    sample_id: str
    captioner_id: str
    text: str
    degradation: str | None
    status: str  # "ok" | "failed"
    error: str | None
    quality: float | None


def caption_id_of(sample_id: str, captioner_id: str, text: str) -> str:
    """hash(sample_id, captioner id, text): the same caption of the same image, same id."""
    return hashlib.sha256(f"{sample_id}\x1f{captioner_id}\x1f{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PreferencePair:
    """chosen > rejected for one image, from a judge, a VQA reference or an imported file."""

    pair_id: str
    batch: str
    sample_id: str
    kind: str  # "caption" | "vqa_closed" | "vqa_open" | "imported"
    question: str | None
    chosen: str
    rejected: str
    chosen_caption_id: str | None
    rejected_caption_id: str | None
    judge: str
    margin: float | None
    split: str  # "train" | "val"


def pair_id_of(sample_id: str, kind: str, question: str | None, chosen: str, rejected: str) -> str:
    """Content id of a pair."""
    key = "\x1f".join([sample_id, kind, question or "", chosen, rejected])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


CAPTION_SCHEMA = pa.schema(
    [
        ("caption_id", pa.string()),
        ("batch", pa.string()),
        ("sample_id", pa.string()),
        ("captioner_id", pa.string()),
        ("text", pa.string()),
        ("degradation", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("quality", pa.float64()),
    ]
)

PAIR_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("batch", pa.string()),
        ("sample_id", pa.string()),
        ("kind", pa.string()),
        ("question", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("chosen_caption_id", pa.string()),
        ("rejected_caption_id", pa.string()),
        ("judge", pa.string()),
        ("margin", pa.float64()),
        ("split", pa.string()),
    ]
)


# One score per (image, text) under one scorer version (grain of `pair_scores`).
SCORE_SCHEMA = pa.schema(
    [
        ("scorer_version", pa.string()),
        ("batch", pa.string()),
        ("sample_id", pa.string()),
        ("caption_id", pa.string()),
        ("score", pa.float64()),
    ]
)


# One kept pair of one selection (grain of `curated_subsets`), with why it was kept.
SELECTION_SCHEMA = pa.schema(
    [
        ("selection", pa.string()),
        ("scorer_version", pa.string()),
        ("batch", pa.string()),
        ("sample_id", pa.string()),
        ("caption_id", pa.string()),
        ("text", pa.string()),
        ("score", pa.float64()),
        ("rank", pa.int64()),
        ("reason", pa.string()),
    ]
)


# One CLIP fine-tuned on one selection with one seed (grain of `clip_checkpoints`).
CHECKPOINT_SCHEMA = pa.schema(
    [
        ("selection", pa.string()),
        ("seed", pa.int64()),
        ("manifest_digest", pa.string()),  # sha256 of the selection's sorted caption ids
        ("train_pairs", pa.int64()),
        ("train_images", pa.int64()),
        ("steps", pa.int64()),
        ("final_loss", pa.float64()),
        ("url", pa.string()),
    ]
)


# One VLM fine-tuned on one selection with one seed (grain of `vlm_checkpoints`).
VLM_CHECKPOINT_SCHEMA = pa.schema(
    [
        ("selection", pa.string()),
        ("seed", pa.int64()),
        ("manifest_digest", pa.string()),  # sha256 of the selection's sorted caption ids
        ("base_model", pa.string()),  # `tiny` or the local checkpoint folder trained from
        ("adapter", pa.bool_()),  # LoRA adapters (True) or full weights (False)
        ("train_examples", pa.int64()),  # caption + VQA examples in the ShareGPT set
        ("train_images", pa.int64()),
        ("steps", pa.int64()),
        ("final_loss", pa.float64()),
        ("url", pa.string()),
    ]
)


# Best-of-N accuracy of one VLM checkpoint: one strategy at one N on one benchmark.
BON_SCHEMA = pa.schema(
    [
        ("selection", pa.string()),
        ("seed", pa.int64()),
        ("benchmark", pa.string()),
        ("scorer_version", pa.string()),  # the scorer that ranked the N answers
        ("strategy", pa.string()),  # greedy | scorer | random | majority | clipscore
        ("n", pa.int64()),  # answers sampled per question (1 for greedy)
        ("accuracy", pa.float64()),
        ("questions", pa.int64()),
        ("checkpoint", pa.string()),
    ]
)


# One metric of one checkpoint on one benchmark (grain of `eval_results`).
EVAL_SCHEMA = pa.schema(
    [
        ("selection", pa.string()),
        ("scorer", pa.string()),
        ("percent", pa.float64()),
        ("seed", pa.int64()),
        ("benchmark", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n_images", pa.int64()),
        ("excluded", pa.int64()),
        ("checkpoint", pa.string()),
    ]
)


def to_table(records: list, schema: pa.Schema) -> pa.Table:
    """Records (dataclasses) to an Arrow table of exactly `schema`."""
    names = schema.names
    if records:
        assert [f.name for f in fields(records[0])] == names, "record and schema disagree"
    # Plain attribute reads: `asdict` deep-copies every record (27x slower on 1,400 samples),
    # and no schema here nests a record inside another.
    columns = {name: [getattr(r, name) for r in records] for name in names}
    return pa.table(columns, schema=schema)
