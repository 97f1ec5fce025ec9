"""Import preference files in the RSRM format used by ScoreRS.

Accepted, as the ScoreRS reward-dataset loader reads them:

* files: a JSON list, JSONL (one object a line), one JSON object, or Parquet;
* texts: `chosen`, `rejected` (a string or a list), optional `question` (or `prompt`), either
  on the record or inside a `text` field holding them as a JSON string (the Parquet variant);
  any of them may be chat messages (`[{role, content}]`, content a string or a list of
  `{type: text, text}` parts): the assistant turn's text is the answer, the user's the question;
* images: `image_path` / `image_name` (relative to the image root, else to the file's folder,
  also tried under `<root>/<file stem>/` as the loader does), or `image` as `{bytes, path}`,
  raw bytes, or a path.

The image is hashed, so an imported pair attaches to the same `sample_id` as the ingested
image. Every record that does not import is counted by reason and reported with its file and
line (JSON list: element number; Parquet: row number), never silently dropped; a malformed line
costs only itself.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from rs_pipeline.core.records import sample_id_of
from rs_pipeline.core.sources.files import read_bytes, resolve_inside

MAX_PROBLEMS_LISTED = 1000  # per import; the counts stay complete beyond it


@dataclass(frozen=True)
class ImportedPair:
    """One chosen > rejected record, attached to an image by content hash."""

    sample_id: str
    question: str | None
    chosen: str
    rejected: str
    source: str  # file it came from
    line: int = 0  # its line (JSONL), element (JSON list) or row (Parquet), from 1


@dataclass(frozen=True)
class RecordProblem:
    """Why one record (or a whole unreadable file, line 0) did not import."""

    source: str
    line: int
    reason: str
    detail: str


@dataclass(frozen=True)
class RawRecord:
    """One record as read: its object, or why it is not one."""

    line: int
    data: dict | None
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class PrefTexts:
    """The texts of one record, normalised to strings."""

    question: str | None
    chosen: str
    rejected: list[str]


class RecordError(ValueError):
    """A record that cannot be imported, with the reason it is counted under."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# -- reading files ---------------------------------------------------------------------------


def _json_record(line: int, value: Any) -> RawRecord:
    if isinstance(value, dict):
        return RawRecord(line, value)
    return RawRecord(line, None, "not_an_object", f"a JSON {type(value).__name__}, not an object")


def _jsonl_records(text: str) -> Iterator[RawRecord]:
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield _json_record(n, json.loads(raw))
        except json.JSONDecodeError as err:
            yield RawRecord(n, None, "malformed_json", f"{err.msg} at column {err.colno}")


def _json_records(text: str) -> Iterator[RawRecord]:
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as err:
            if stripped.startswith("["):  # one document: nothing to resynchronise on
                yield RawRecord(err.lineno, None, "malformed_json", f"JSON list: {err.msg}")
                return
        else:
            items = value if isinstance(value, list) else [value]
            yield from (_json_record(i, v) for i, v in enumerate(items, start=1))
            return
    yield from _jsonl_records(text)


def read_records(path: str) -> Iterator[RawRecord]:
    """The records of one RSRM file, each with its line; an unreadable file is one problem."""
    fs, p = url_to_fs(path)
    try:
        if p.lower().endswith(".parquet"):
            with fs.open(p, "rb") as fh:
                rows = pq.read_table(fh).to_pylist()
            yield from (RawRecord(i, r) for i, r in enumerate(rows, start=1))
            return
        with fs.open(p, "rt", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, ValueError) as err:
        yield RawRecord(0, None, "unreadable_file", f"{type(err).__name__}: {err}")
        return
    yield from _json_records(text)


# -- normalising texts -----------------------------------------------------------------------


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value and "content" in value


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(t for t in parts if isinstance(t, str) and t)
    raise RecordError("bad_message", f"message content is a {type(content).__name__}")


def _turn_text(messages: list[dict], role: str) -> str | None:
    """The text of the last `role` turn of a conversation, or None when it has none."""
    texts = [_content_text(m["content"]) for m in messages if m.get("role") == role]
    return texts[-1] if texts else None


def _answer(value: Any, field_name: str) -> str | None:
    """An answer as text: a string, one message, or a conversation (its assistant turn)."""
    if value is None or isinstance(value, str):
        return value or None
    if _is_message(value):
        value = [value]
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        text = _turn_text(value, "assistant")
        if text is None:
            raise RecordError("bad_message", f"{field_name}: no assistant turn")
        return text or None
    raise RecordError("bad_message", f"{field_name}: a {type(value).__name__}, not text")


def _rejected_list(value: Any) -> list[str]:
    if value is None or isinstance(value, str) or _is_message(value):
        items = [value]
    elif isinstance(value, list) and value and all(_is_message(m) for m in value):
        items = [value]  # one conversation, not several answers
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise RecordError("bad_message", f"rejected: a {type(value).__name__}, not text")
    texts = [_answer(v, "rejected") for v in items]
    return [t for t in texts if t]


def _question(value: Any, chosen: Any) -> str | None:
    """`question`/`prompt` as text; without one, the user turn of a `chosen` conversation."""
    if isinstance(value, str) and value:
        return value
    if not value:
        value = chosen
    if _is_message(value):
        value = [value]
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        return _turn_text(value, "user") or None
    return None


def _text_fields(record: dict) -> dict:
    """The record's texts, from a `text` JSON string when it has no `chosen` of its own."""
    if "chosen" in record or record.get("text") is None:
        return record
    inner = record["text"]
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except json.JSONDecodeError as err:
            raise RecordError("malformed_text", f"`text` is not JSON: {err.msg}") from None
    if not isinstance(inner, dict):
        raise RecordError("malformed_text", f"`text` holds a {type(inner).__name__}")
    return {**record, **inner}


def pref_texts(record: dict) -> PrefTexts:
    """Question, chosen and rejected texts of a record; RecordError when it has none."""
    fields = _text_fields(record)
    raw_q = fields.get("question") or fields.get("prompt")
    chosen = _answer(fields.get("chosen"), "chosen")
    rejected = _rejected_list(fields.get("rejected"))
    missing = [n for n, v in (("chosen", chosen), ("rejected", rejected)) if not v]
    if missing or chosen is None:
        raise RecordError("missing_fields", f"no {' or '.join(missing)}")
    return PrefTexts(_question(raw_q, fields.get("chosen")), chosen, rejected)


# -- attaching images ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where one file's relative image names are looked up."""

    fs: Any
    root: str
    stem: str  # the file's name without extension: the loader's per-dataset image folder


def _place(path: str, image_root: str | None) -> _Place:
    fs, p = url_to_fs(path)
    root = url_to_fs(image_root)[1] if image_root else posixpath.dirname(p)
    stem = posixpath.splitext(posixpath.basename(p))[0]
    return _Place(fs, root, stem)


def _image_ref(record: dict) -> tuple[bytes | None, str | None]:
    """(inline bytes, relative path) of a record's image; both None when it names none."""
    image = record.get("image")
    if isinstance(image, dict):
        data, path = image.get("bytes"), image.get("path")
        return (bytes(data) if data else None), (path or None)
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image) or None, None
    name = record.get("image_path") or record.get("image_name") or image
    return None, (str(name) if name else None)


def _read_image(place: _Place, name: str) -> bytes:
    resolved = resolve_inside(place.root, name)
    if resolved is None:
        raise RecordError("image_outside_root", f"{name!r} escapes {place.root}")
    tried = [resolved]
    nested = resolve_inside(posixpath.join(place.root, place.stem), name)
    if nested is not None:
        tried.append(nested)
    problems = []
    for candidate in tried:
        data, problem = read_bytes(place.fs, candidate)
        if data is not None:
            return data
        problems.append(problem[1] if problem else candidate)
    raise RecordError("image_missing", problems[0])  # the primary place, not the fallback


def _image_bytes(record: dict, place: _Place) -> bytes:
    data, name = _image_ref(record)
    if data is not None:
        return data
    if name is None:
        raise RecordError("missing_fields", "no image (image_path, image_name or image)")
    return _read_image(place, name)


# -- importing -------------------------------------------------------------------------------


def _note(problems: list[RecordProblem] | None, counts: Counter, problem: RecordProblem) -> None:
    counts[problem.reason] += 1
    if problems is None:
        return
    if len(problems) < MAX_PROBLEMS_LISTED:
        problems.append(problem)
    else:
        counts["problems_not_listed"] += 1


def _record_pairs(path: str, rec: RawRecord, place: _Place) -> list[ImportedPair]:
    assert rec.data is not None
    texts = pref_texts(rec.data)
    sid = sample_id_of(_image_bytes(rec.data, place))
    return [
        ImportedPair(sid, texts.question, texts.chosen, r, path, rec.line) for r in texts.rejected
    ]


def import_rsrm(
    paths: tuple[str, ...],
    image_root: str | None,
    counts: Counter,
    problems: list[RecordProblem] | None = None,
) -> Iterator[ImportedPair]:
    """Pairs of every record, one per rejected text. `counts` gets `read` per imported record
    and a reason per other one; `problems` (when given) gets each of those with its line."""
    for path in paths:
        place = _place(path, image_root)
        for rec in read_records(path):
            if rec.data is None:
                _note(problems, counts, RecordProblem(path, rec.line, str(rec.reason), rec.detail))
                continue
            try:
                pairs = _record_pairs(path, rec, place)
            except RecordError as err:
                _note(problems, counts, RecordProblem(path, rec.line, err.reason, err.detail))
                continue
            counts["read"] += 1
            yield from pairs
