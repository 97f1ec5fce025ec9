"""Nightly drops: the sub-folders `<batch>/` of the landing prefix that are ready to ingest.

A drop is complete when its folder holds a `_SUCCESS` marker (the Hadoop/Spark convention):
the uploader writes it last, so a half-copied drop is never ingested. Drops are picked up in
sorted name order (dates sort by time); names that are not valid batch keys are reported, not
ingested, since a batch key becomes a folder name and a Dagster partition key.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rs_pipeline.core.names import check_batch_key
from rs_pipeline.core.sources.files import subfolders
from rs_pipeline.core.sources.imagefolder import COMPLETION_MARKER

MARKER = COMPLETION_MARKER


@dataclass(frozen=True)
class LandingScan:
    """What the landing prefix holds: new complete drops, and why others were left alone."""

    new: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # complete, already a batch
    incomplete: list[str] = field(default_factory=list)  # no `_SUCCESS` yet
    invalid: list[str] = field(default_factory=list)  # not a valid batch key


def _is_valid(name: str) -> bool:
    try:
        check_batch_key(name)
    except ValueError:
        return False
    return True


def scan_landing(
    landing: str, registered: Iterable[str], storage_options: dict[str, Any] | None = None
) -> LandingScan:
    """Sort the sub-folders of `landing` into new, already registered, incomplete and invalid."""
    fs, folders = subfolders(
        landing, "automation.landing", "the nightly `<batch>/` drops", storage_options
    )
    known = set(registered)
    scan = LandingScan()
    for folder in folders:
        name = posixpath.basename(folder)
        if not _is_valid(name):
            scan.invalid.append(name)
        elif not fs.exists(posixpath.join(folder, MARKER)):
            scan.incomplete.append(name)
        elif name in known:
            scan.registered.append(name)
        else:
            scan.new.append(name)
    return scan
