"""Reading user files through fsspec without letting one bad file stop a batch."""

from __future__ import annotations

import posixpath

from fsspec import AbstractFileSystem

from rs_pipeline.core.records import QuarantineReason


def url_prefix(fs: AbstractFileSystem) -> str:
    """`s3://` etc. for remote filesystems, "" for local paths."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "" if protocol in ("file", "local") else f"{protocol}://"


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
