"""Reading user files through fsspec without letting one bad file stop a batch."""

from __future__ import annotations

import posixpath
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from rs_pipeline.core.records import QuarantineReason


def url_prefix(fs: AbstractFileSystem) -> str:
    """`s3://` etc. for remote filesystems, "" for local paths."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "" if protocol in ("file", "local") else f"{protocol}://"


def subfolders(
    url: str, setting: str, holds: str, storage_options: dict[str, Any] | None = None
) -> tuple[AbstractFileSystem, list[str]]:
    """The filesystem of `url` and its immediate sub-folders (full paths, sorted by name).

    `setting` names the config key that points here and `holds` what it should contain, so a
    missing folder says what to fix.
    """
    fs, root = url_to_fs(url, **(storage_options or {}))
    if not fs.isdir(root):
        raise FileNotFoundError(
            f"{setting} {url} is not a folder: create it or point {setting} at the prefix "
            f"holding {holds}"
        )
    entries = fs.ls(root, detail=True)
    return fs, sorted(e["name"].rstrip("/") for e in entries if e["type"] == "directory")


def read_bytes(fs: AbstractFileSystem, path: str) -> tuple[bytes | None, tuple[str, str] | None]:
    """The file's bytes, or None and (reason, detail) for why it could not be read."""
    try:
        return fs.cat_file(path), None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        return None, (QuarantineReason.UNREADABLE, f"{type(err).__name__}: {path}")
    except OSError as err:
        return None, (QuarantineReason.UNREADABLE, f"OSError reading {path}: {err}")


def resolve_inside(root: str, relative: str) -> str | None:
    """`relative` joined to `root`, or None when the result would escape `root`."""
    base = posixpath.normpath(root)
    joined = posixpath.normpath(
        relative if relative.startswith("/") else posixpath.join(base, relative)
    )
    return joined if joined.startswith(base.rstrip("/") + "/") else None
