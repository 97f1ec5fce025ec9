"""A one-line description of the machine a benchmark ran on, and RESULTS.md section upkeep.

Every benchmark takes `--quick` (smoke sizes, to prove it still runs; never a measurement) and
`--out DIR` (write its RESULTS.md sections, plots and JSON under DIR). Only a run without
either writes benchmarks/RESULTS.md; `--quick` alone writes nothing, it prints.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def describe() -> str:
    """CPU model, cores, memory, Python: enough to compare runs."""
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
    except (OSError, AttributeError):
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def run_info() -> str:
    """Date and the versions that decide speed: enough to compare runs."""
    import dagster
    import open_clip
    import torch
    import transformers

    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), open_clip {open_clip.__version__}, "
        f"transformers {transformers.__version__}, dagster {dagster.__version__}"
    )


def add_output_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """`--quick` (smoke sizes: `quick` says which) and `--out DIR` (where results go)."""
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke sizes ({quick}): proves it runs, measures nothing; "
                        "writes nothing unless --out is given")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write RESULTS.md sections (and plots, JSON) under DIR, "
                        "not under benchmarks/")  # fmt: skip


def results_file(args: argparse.Namespace) -> Path | None:
    """DIR/RESULTS.md under --out; None (print only) for --quick alone; else RESULTS.md."""
    if args.out is not None:
        return Path(args.out) / "RESULTS.md"
    return None if args.quick else RESULTS


def write_section(name: str, body: str, results: Path | None = RESULTS) -> None:
    """Replace (or append) the section between this benchmark's markers in `results`.

    `results=None` (a quick run without --out) writes nothing.
    """
    if results is None:
        print(f"[{name}: quick run, no RESULTS.md written; --out DIR keeps it]")
        return
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    results.parent.mkdir(parents=True, exist_ok=True)
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    results.write_text(text)
