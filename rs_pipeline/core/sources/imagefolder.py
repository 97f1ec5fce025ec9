"""User data as an ImageFolder (`<root>/<class>/<image>`) at any fsspec URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rs_pipeline.core.records import QuarantineReason
from rs_pipeline.core.sources.base import RawItem
from rs_pipeline.core.sources.files import (
    RootGuard,
    escape_name,
    list_files,
    open_fs,
    read_bytes,
    url_prefix,
)

# A drop written by a producer ends with this empty file (core/landing.py waits for it).
COMPLETION_MARKER = "_SUCCESS"


class ImageFolderSource:
    """Every file under `<path>/<class>/`; class = folder name.

    Files elsewhere in the tree, or with an unlisted extension, are not silently skipped:
    they reach quarantine with their reason, so the batch's counts account for every file.
    Only regular files inside the root are read: a symlink resolving outside it, a FIFO or a
    device is quarantined unread. Names that are not UTF-8 are kept percent-escaped
    (`files.escape_name`) in the URI and label; the file itself is read by its raw name.
    """

    def __init__(
        self,
        name: str,
        path: str,
        extensions: tuple[str, ...],
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.extensions = tuple(e.lower() for e in extensions)
        self.storage_options = storage_options or {}

    def iter_items(self, batch: str) -> Iterator[RawItem]:
        """Files in sorted order, so ids and rows are deterministic."""
        url = self.path.replace("{batch}", batch)
        fs, root = open_fs(url, self.storage_options)
        if not fs.isdir(root):
            raise FileNotFoundError(
                f"imagefolder source {self.name!r}: {url} is not a folder; "
                "set sources[].path to a folder of <class>/<image> files"
            )
        prefix, guard = url_prefix(fs), RootGuard(fs, root)
        under = root.rstrip("/") + "/"
        for path, plain in list_files(fs, root):
            # listed paths start with `root` as given: a slice, not relpath's normalising
            parts = path.removeprefix(under).split("/")
            if parts == [COMPLETION_MARKER]:
                continue  # the landing drop's completion marker, not an input

            label = escape_name(parts[0]) if len(parts) == 2 else None
            if len(parts) != 2:
                data, problem = None, (QuarantineReason.NOT_IN_LAYOUT, "not <class>/<file>")
            elif not path.lower().endswith(self.extensions):
                detail = f"extension not in {list(self.extensions)}"
                data, problem = None, (QuarantineReason.UNLISTED_EXTENSION, detail)
            elif not guard.admits(path, plain=plain):
                detail = f"symlink resolves outside {escape_name(root)}"
                data, problem = None, (QuarantineReason.PATH_OUTSIDE_ROOT, detail)
            else:
                data, problem = read_bytes(fs, path, regular=plain)
            yield RawItem(
                uri=escape_name(f"{prefix}{path}"),
                source=self.name,
                source_kind="imagefolder",
                data=data,
                label=label,
                problem=problem,
            )
