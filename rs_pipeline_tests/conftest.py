"""Shared fixtures: tiny configurations rooted in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rs_pipeline_tests.factories import SHARED_DATA, write_config


@pytest.fixture
def tiny_config(tmp_path: Path) -> str:
    return write_config(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it lives beside the repository)")
    return SHARED_DATA
