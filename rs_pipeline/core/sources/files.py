"""Reading user files through fsspec without letting one bad file stop a batch."""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from rs_pipeline.core.artifacts import with_s3_defaults
from rs_pipeline.core.records import QuarantineReason

# Object stores hold only plain objects (no FIFOs, devices or symlinks), so the per-file
# `info` call that would prove it is skipped there: it would double the requests per image.
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "adl", "memory"})


def _protocol(fs: AbstractFileSystem) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def url_prefix(fs: AbstractFileSystem) -> str:
    """`s3://` etc. for remote filesystems, "" for local paths."""
    protocol = _protocol(fs)
    return "" if protocol in ("file", "local") else f"{protocol}://"


def escape_name(name: str) -> str:
    """`name` as valid UTF-8: each byte a POSIX file name held that is not UTF-8 becomes `%XX`.

    Python hands such names over as surrogate escapes (U+DC80..U+DCFF), which Arrow refuses.
    Percent-escaping only those bytes leaves every valid name unchanged, and the raw name comes
    back with `os.fsdecode(urllib.parse.unquote_to_bytes(escaped))` unless the valid part
    itself held a literal `%XX` (documented ambiguity; the file is still read by its raw name).
    """
    if name.isascii():
        return name
    return "".join(f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c for c in name)


def open_fs(url: str, storage_options: dict[str, Any] | None = None):
    """(filesystem, path) of `url`; S3 reads get bounded timeouts unless the user set them."""
    return url_to_fs(url, **with_s3_defaults(url, storage_options))


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


def not_regular(fs: AbstractFileSystem, path: str) -> str | None:
    """Why `path` is not a regular file (FIFO, socket, device, folder), or None if it is.

    Checked without opening: opening a FIFO blocks until a writer appears, i.e. for ever.
    """
    if isinstance(fs, LocalFileSystem):
        mode = os.stat(path).st_mode  # follows symlinks: the target is what would be read
        return None if stat.S_ISREG(mode) else f"file mode {stat.filemode(mode)}"
    if _protocol(fs) in _OBJECT_STORES:
        return None
    kind = fs.info(path).get("type")
    return None if kind == "file" else f"type {kind!r}"


def plain_file(info: dict[str, Any]) -> bool:
    """Whether a listing entry (`fs.find(..., detail=True)`) is a regular file and no symlink.

    fsspec's local walk types entries without following links and does not descend into a
    linked folder, so such an entry lies inside the listed root with nothing left to check.
    """
    return info.get("type") == "file" and not info.get("islink", False)


def list_files(fs: AbstractFileSystem, root: str) -> list[tuple[str, bool]]:
    """(path, plain) for every entry under `root` that is not a folder, sorted by path.

    `plain`: a regular file and no symlink, i.e. one that can be read without further checks
    (`plain_file`). Local roots are walked with `os.scandir` (fsspec's walk stats every entry
    and strips its protocol, a third of the source's cost on small tiles) with fsspec's
    rules: linked folders are listed as entries, not entered. A folder that cannot be listed
    is listed itself (not plain), so it reaches quarantine instead of vanishing.
    """
    if not isinstance(fs, LocalFileSystem):
        return sorted((path, plain_file(info)) for path, info in fs.find(root, detail=True).items())
    found, folders = [], [root.rstrip("/") or "/"]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except FileNotFoundError:
            continue  # removed while listing: nothing to account for
        except OSError:
            found.append((folder, False))
            continue
        for entry in listed:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            else:  # is_file without following: False for links, FIFOs and devices
                found.append((entry.path, entry.is_file(follow_symlinks=False)))
    return sorted(found)


def _read(fs: AbstractFileSystem, path: str) -> bytes:
    if isinstance(fs, LocalFileSystem):  # builtin open: fsspec's file object costs more
        with open(path, "rb") as f:  # than the read itself on small tiles
            return f.read()
    return fs.cat_file(path)


def read_bytes(
    fs: AbstractFileSystem, path: str, *, regular: bool = False
) -> tuple[bytes | None, tuple[str, str] | None]:
    """The file's bytes, or None and (reason, detail) for why it could not be read.

    `regular`: the caller's listing already showed a plain file (`plain_file`), so the stat
    that guards against FIFOs and devices is skipped.
    """
    shown = escape_name(path)
    try:
        why = None if regular else not_regular(fs, path)
        if why is not None:
            return None, (QuarantineReason.NOT_A_REGULAR_FILE, f"{why}: {shown}")
        return _read(fs, path), None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        return None, (QuarantineReason.UNREADABLE, f"{type(err).__name__}: {shown}")
    except OSError as err:
        detail = escape_name(f"OSError reading {path}: {err}")
        return None, (QuarantineReason.UNREADABLE, detail)


class RootGuard:
    """Whether a path, symlinks resolved, stays under `root` (also resolved, once per listing:
    resolving the root again for every file was half the source's cost on 1,400 files).

    Only local filesystems have symlinks; object-store keys are taken as they are.
    """

    def __init__(self, fs: AbstractFileSystem, root: str) -> None:
        self._local = isinstance(fs, LocalFileSystem)
        self._real_root = os.path.realpath(root).rstrip("/") + "/" if self._local else ""

    def admits(self, path: str, *, plain: bool = False) -> bool:
        """True when `path` resolves inside the root. `plain`: the listing under the root
        showed it as a regular file, not a link (`plain_file`), so it cannot lead outside."""
        if plain or not self._local:
            return True
        return os.path.realpath(path).startswith(self._real_root)


def resolve_inside(root: str, relative: str) -> str | None:
    """`relative` joined to `root`, or None when the result would escape `root`."""
    base = posixpath.normpath(root)
    joined = posixpath.normpath(
        relative if relative.startswith("/") else posixpath.join(base, relative)
    )
    return joined if joined.startswith(base.rstrip("/") + "/") else None
