"""benchmarks/*.py import as modules of the repo (`python -m benchmarks.NAME`), never by editing
sys.path, and every script offers `--quick`, which never writes benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "__init__.py")
SCRIPTS = [p for p in BENCHMARKS if 'if __name__ == "__main__"' in p.read_text()]


def test_there_are_benchmarks():
    assert {"ingest", "curation", "curation_report", "machine"} <= {p.stem for p in BENCHMARKS}


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_imports_without_sys_path_edits(path):
    assert "sys.path" not in path.read_text()
    importlib.import_module(f"benchmarks.{path.stem}")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_scripts_have_quick_and_module_usage(path):
    text = path.read_text()
    assert "--quick" in text
    assert f"python -m benchmarks.{path.stem}" in text  # the docstring's usage line
    assert f"benchmarks/{path.stem}.py " not in text.split('"""')[1]  # no script-path usage


# Each subprocess imports torch (~3 s): a few representative scripts, not all of them.
@pytest.mark.parametrize("name", ["ingest", "scorers", "curation_report"])
def test_help_runs_as_a_module(name):
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--out" in out.stdout


def test_quick_writes_nowhere_unless_out(tmp_path):
    from benchmarks.machine import RESULTS, add_output_options, results_file, write_section

    parser = argparse.ArgumentParser()
    add_output_options(parser, "smoke")
    assert results_file(parser.parse_args([])) == RESULTS
    assert results_file(parser.parse_args(["--quick"])) is None
    out = results_file(parser.parse_args(["--quick", "--out", str(tmp_path / "o")]))
    assert out == tmp_path / "o" / "RESULTS.md"
    before = RESULTS.read_text()
    write_section("probe", "nothing", None)
    assert RESULTS.read_text() == before
    write_section("probe", "first", out)
    write_section("probe", "second", out)
    text = out.read_text()
    assert "second" in text and "first" not in text and text.count("probe:start") == 1
