"""User data listed in a manifest file (CSV, Parquet or JSONL) at any fsspec URL.

Columns: `path` (required; relative to `root`, which defaults to the manifest's folder),
optional `label`, `captions` (a list, or in CSV a JSON list or one caption), and metadata
`gsd_m`, `sensor`, `lat`, `lon`, `acquisition_date`. Other columns are ignored. A file with
its own names is mapped by `columns` (our field -> its column, e.g. `{path: filename, captions:
title}` for a CLIP-style `filename,title` CSV). A path that resolves outside `root` is
quarantined, never read; on a local filesystem so is a path whose symlinks resolve outside it.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from rs_pipeline.core.records import QuarantineReason
from rs_pipeline.core.sources.base import GeoMetadata, RawItem
from rs_pipeline.core.sources.files import (
    RootGuard,
    open_fs,
    read_bytes,
    resolve_inside,
    url_prefix,
)

FORMATS = (".csv", ".parquet", ".jsonl", ".json")


def read_manifest(fs, path: str) -> pa.Table:
    """The manifest as an Arrow table; the format comes from the extension."""
    lower = path.lower()
    with fs.open(path, "rb") as fh:
        if lower.endswith(".csv"):
            return pacsv.read_csv(fh)
        if lower.endswith(".parquet"):
            return pq.read_table(fh)
        if lower.endswith((".jsonl", ".json")):
            return pajson.read_json(fh)
    raise ValueError(f"manifest {path}: unsupported format; use one of {list(FORMATS)}")


def apply_columns(table: pa.Table, columns: dict[str, str], where: str = "manifest") -> pa.Table:
    """The table with each mapped file column under our field name; a mapped field wins."""
    if not columns:
        return table
    missing = sorted({c for c in columns.values() if c not in table.column_names})
    if missing:
        raise ValueError(
            f"{where}: `columns` maps to {missing}, which the file does not have; "
            f"its columns are {table.column_names}"
        )
    mapped = {ours: table.column(theirs) for ours, theirs in columns.items()}
    kept = {
        n: table.column(n)
        for n in table.column_names
        if n not in mapped and n not in columns.values()
    }
    return pa.table({**kept, **mapped})


def parse_captions(value: Any) -> tuple[str, ...]:
    """Captions from a list, a JSON list in a string, or one caption string."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    text = str(value).strip()
    if text.startswith("["):
        try:
            return tuple(str(v) for v in json.loads(text))
        except json.JSONDecodeError:
            pass
    return (text,) if text else ()


def _geo(row: dict[str, Any]) -> GeoMetadata:
    def num(key: str) -> float | None:
        v = row.get(key)
        return None if v is None or v == "" else float(v)

    date = row.get("acquisition_date")
    return GeoMetadata(
        gsd_m=num("gsd_m"),
        sensor=row.get("sensor"),
        lat=num("lat"),
        lon=num("lon"),
        acquisition_date=None if date is None else str(date),
    )


class ManifestSource:
    """One input per manifest row, in file order."""

    def __init__(
        self,
        name: str,
        path: str,
        root: str | None = None,
        storage_options: dict[str, Any] | None = None,
        columns: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.root = root
        self.storage_options = storage_options or {}
        self.columns = dict(columns or {})  # our field -> the file's column

    def iter_items(self, batch: str) -> Iterator[RawItem]:
        """Rows of the manifest, each resolved inside the root and read."""
        url = self.path.replace("{batch}", batch)
        fs, mpath = open_fs(url, self.storage_options)
        table = apply_columns(read_manifest(fs, mpath), self.columns, f"manifest {url}")
        if "path" not in table.column_names:
            raise ValueError(
                f"manifest {url}: needs a `path` column, or `columns: {{path: <its column>}}`; "
                f"found {table.column_names}"
            )
        root = url_to_fs(self.root.replace("{batch}", batch))[1] if self.root else None
        root = root or posixpath.dirname(mpath)
        prefix, guard = url_prefix(fs), RootGuard(fs, root)
        for row in table.to_pylist():
            rel = str(row["path"])
            resolved = resolve_inside(root, rel)
            if resolved is None or not guard.admits(resolved):
                data, problem = None, (QuarantineReason.PATH_OUTSIDE_ROOT, f"{rel} not in {root}")
                uri = rel if resolved is None else f"{prefix}{resolved}"
            else:
                data, problem = read_bytes(fs, resolved)
                uri = f"{prefix}{resolved}"
            label = row.get("label")
            yield RawItem(
                uri=uri,
                source=self.name,
                source_kind="manifest",
                data=data,
                label=None if label in (None, "") else str(label),
                geo=_geo(row),
                captions=parse_captions(row.get("captions")),
                problem=problem,
            )
