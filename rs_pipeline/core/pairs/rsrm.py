"""Import preference files in the RSRM format used by ScoreRS.

Records (a JSON list, JSONL, or Parquet) with `chosen`, `rejected` (a string or a list),
optional `question`, and `image_name` or `image_path`. The image is read and hashed, so an
imported pair attaches to the same `sample_id` as the ingested image; records that cannot be
attached are counted by reason, never silently dropped.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from rs_pipeline.core.records import sample_id_of
from rs_pipeline.core.sources.files import read_bytes, resolve_inside


@dataclass(frozen=True)
class ImportedPair:
    """One chosen > rejected record, attached to an image by content hash."""

    sample_id: str
    question: str | None
    chosen: str
    rejected: str
    source: str  # file it came from


def read_records(path: str) -> list[dict]:
    """The records of one RSRM file."""
    fs, p = url_to_fs(path)
    if p.lower().endswith(".parquet"):
        with fs.open(p, "rb") as fh:
            return pq.read_table(fh).to_pylist()
    with fs.open(p, "rt", encoding="utf-8") as fh:
        text = fh.read().strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _rejected_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v is not None and str(v) != ""]


def import_rsrm(
    paths: tuple[str, ...], image_root: str | None, counts: Counter
) -> Iterator[ImportedPair]:
    """Pairs of every record, one per rejected text; `counts` gets a reason per record."""
    for path in paths:
        fs, p = url_to_fs(path)
        root = image_root or posixpath.dirname(p)
        root_path = url_to_fs(root)[1] if image_root else root
        for record in read_records(path):
            image = record.get("image_path") or record.get("image_name")
            chosen, rejected = record.get("chosen"), _rejected_list(record.get("rejected"))
            if not image or not chosen or not rejected:
                counts["missing_fields"] += 1
                continue
            resolved = resolve_inside(root_path, str(image))
            if resolved is None:
                counts["image_outside_root"] += 1
                continue
            data, problem = read_bytes(fs, resolved)
            if data is None:
                counts["image_missing"] += 1
                continue
            counts["read"] += 1
            sid = sample_id_of(data)
            for text in rejected:
                yield ImportedPair(sid, record.get("question") or None, str(chosen), text, path)
