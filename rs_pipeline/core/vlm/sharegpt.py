"""A selection's SFT set: caption pairs plus the VQA answers of its images, as ShareGPT records.

The folder is what LLaMA-Factory reads (`dataset_dir` = the folder, `dataset` = DATASET_NAME),
so the paper's recipe can be rerun on the same data outside this pipeline; the in-process
trainer (`sft.py`) trains on the very same examples.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.prompts import CAPTION_PROMPT
from rs_pipeline.core.vlm.chat import IMAGE_TOKEN

DATASET_NAME = "rs_sft"  # the key in dataset_info.json: LLaMA-Factory's `dataset: rs_sft`
DATA_FILE, INFO_FILE, IMAGES_DIR = "data.json", "dataset_info.json", "images"
VQA_KINDS = frozenset({"vqa_closed", "vqa_open"})
_EXT = {"JPEG": "jpg", "PNG": "png"}  # anything else was re-encoded as PNG at ingest

# LLaMA-Factory's description of a ShareGPT file whose turns are {"role", "content"} dicts.
DATASET_INFO = {
    "file_name": DATA_FILE,
    "formatting": "sharegpt",
    "columns": {"messages": "messages", "images": "images"},
    "tags": {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
    },
}


@dataclass(frozen=True)
class SFTExample:
    """One supervised turn: a question about one image and the answer to learn."""

    sample_id: str
    batch: str
    kind: str  # "caption" | "vqa"
    question: str
    answer: str


def _vqa_examples(
    vqa_pairs: list[dict], selected: set[tuple[str, str]], *, vqa_per_image: int
) -> list[SFTExample]:
    """Chosen VQA answers of the selected images: one per question, `vqa_per_image` at most."""
    by_image: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    # Sorted first, so among duplicate questions the kept answer never depends on input order.
    rows = sorted(
        (p for p in vqa_pairs if p["kind"] in VQA_KINDS),
        key=lambda p: (p["batch"], p["sample_id"], p["question"], p["chosen"]),
    )
    for p in rows:
        image = (p["batch"], p["sample_id"])
        if image in selected:
            by_image[image].setdefault(p["question"], p["chosen"])
    out = []
    for (batch, sid), answers in by_image.items():
        for question in sorted(answers)[:vqa_per_image]:
            out.append(SFTExample(sid, batch, "vqa", question, answers[question]))
    return out


def sft_examples(
    selection_rows: list[dict], vqa_pairs: list[dict], *, vqa_per_image: int
) -> list[SFTExample]:
    """Caption examples (one per selected row) plus VQA examples of the selected images only.

    Images are keyed by (batch, sample_id). The result is sorted by (kind, sample_id,
    question, answer, batch): captions first, and independent of the input rows' order, so a
    selection always yields the same set in the same order.
    """
    if vqa_per_image < 0:
        raise ValueError(f"vqa_per_image must be >= 0 (vlm.vqa_per_image), got {vqa_per_image}")
    captions = [
        SFTExample(r["sample_id"], r["batch"], "caption", CAPTION_PROMPT, r["text"])
        for r in selection_rows
    ]
    selected = {(r["batch"], r["sample_id"]) for r in selection_rows}
    vqa = _vqa_examples(vqa_pairs, selected, vqa_per_image=vqa_per_image)
    return sorted(
        captions + vqa, key=lambda e: (e.kind, e.sample_id, e.question, e.answer, e.batch)
    )


def sharegpt_record(example: SFTExample, image: str) -> dict:
    """One LLaMA-Factory ShareGPT record; `image` is the path relative to data.json."""
    return {
        "messages": [
            {"role": "user", "content": IMAGE_TOKEN + example.question},
            {"role": "assistant", "content": example.answer},
        ],
        "images": [image],
    }


def image_name(sample_id: str, fmt: str) -> str:
    """Relative path of one image inside the set: `images/<sample_id>.<ext>`."""
    if "/" in sample_id or sample_id in {"", ".", ".."}:
        raise ValueError(f"sample_id {sample_id!r} cannot name an image file")
    return posixpath.join(IMAGES_DIR, f"{sample_id}.{_EXT.get(fmt, 'png')}")


def write_sharegpt(
    store: ArtifactStore,
    folder: str,
    examples: Sequence[SFTExample],
    images: dict[str, tuple[str, bytes]],
) -> str:
    """Write `folder/images/*`, `dataset_info.json`, then `data.json` (the marker of a complete
    set, written last); `images` maps sample_id -> (format, encoded bytes). Returns data.json's
    URL."""
    missing = sorted({e.sample_id for e in examples} - set(images))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} training images are missing (e.g. {missing[0]}): "
            "re-materialize rs_images for their batches"
        )
    store.fs.makedirs(store.path(folder, IMAGES_DIR), exist_ok=True)
    names: dict[str, str] = {}
    for e in examples:
        if e.sample_id not in names:  # each image once, however many examples ask about it
            fmt, data = images[e.sample_id]
            names[e.sample_id] = image_name(e.sample_id, fmt)
            store.fs.pipe_file(store.path(folder, names[e.sample_id]), data)
    info = json.dumps({DATASET_NAME: DATASET_INFO}, indent=2, sort_keys=True)
    store.fs.pipe_file(store.path(folder, INFO_FILE), info.encode())
    records = [sharegpt_record(e, names[e.sample_id]) for e in examples]
    data = json.dumps(records, ensure_ascii=False, indent=1)
    store.fs.pipe_file(store.path(folder, DATA_FILE), data.encode("utf-8"))
    return store.url(folder, DATA_FILE)
