"""Nightly drops under the landing prefix: complete, new, valid ones only, in sorted order."""

from pathlib import Path

import pytest

from rs_pipeline.core.landing import MARKER, scan_landing


def drop(landing: Path, name: str, complete: bool = True) -> None:
    folder = landing / name / "harbor"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    if complete:
        (landing / name / MARKER).write_text("")


def test_complete_new_drops_are_listed_in_sorted_order(tmp_path):
    for name in ("2026-11-29", "2026-11-28"):
        drop(tmp_path, name)
    assert scan_landing(str(tmp_path), registered=[]).new == ["2026-11-28", "2026-11-29"]


def test_registered_drop_is_not_new(tmp_path):
    drop(tmp_path, "2026-11-28")
    drop(tmp_path, "2026-11-29")
    scan = scan_landing(str(tmp_path), registered=["2026-11-28"])
    assert scan.new == ["2026-11-29"] and scan.registered == ["2026-11-28"]


def test_drop_without_success_marker_is_incomplete_not_new(tmp_path):
    drop(tmp_path, "2026-11-28", complete=False)
    scan = scan_landing(str(tmp_path), registered=[])
    assert scan.new == [] and scan.incomplete == ["2026-11-28"]


def test_folder_that_is_not_a_batch_key_is_reported_invalid(tmp_path):
    drop(tmp_path, "bad name")
    (tmp_path / "stray.txt").write_text("a file, not a drop")
    scan = scan_landing(str(tmp_path), registered=[])
    assert scan.new == [] and scan.invalid == ["bad name"]


def test_missing_landing_prefix_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="automation.landing"):
        scan_landing(str(tmp_path / "absent"), registered=[])
