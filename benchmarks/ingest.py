"""Ingest throughput: `run_ingest` against a plain read, hash and decode loop over the same files.

    .venv/bin/python -m benchmarks.ingest [--synthrs 2000] [--repeats 3]   # from the repo root
    .venv/bin/python -m benchmarks.ingest --quick [--out DIR]   # 200 tiles, 1 repeat: a smoke

The baseline reads each file, hashes it and decodes + verifies it with Pillow (the least any
ingest that admits only readable images must do); the pipeline also strips JPEG trailers,
dedups, normalises, writes Parquet and the lineage rows. Their ratio is what the bookkeeping
costs; the target is <= 1.5x. Results go to benchmarks/RESULTS.md (under --out DIR instead;
nowhere for --quick alone).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks.machine import add_output_options, describe, results_file, write_section
from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.sources.synthrs import SynthRSSource

RSSCN7 = Path(__file__).resolve().parents[2] / "shared" / "data" / "rsscn7"


def render_synthrs(folder: Path, count: int) -> float:
    """Write `count` SynthRS tiles as an ImageFolder; returns tiles/s of rendering."""
    start = time.perf_counter()
    for item in SynthRSSource("synthrs", count, 64, 0).iter_items("bench"):
        out = folder / item.label / f"{item.uri.rsplit('/', 1)[-1]}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(item.data)
    return count / (time.perf_counter() - start)


def baseline(folder: Path) -> tuple[int, float]:
    """Read, sha256, verify and decode every file with Pillow: (files, seconds)."""
    start = time.perf_counter()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        Image.open(io.BytesIO(data)).verify()  # structure and checksums
        Image.open(io.BytesIO(data)).load()  # every pixel decoded (verify leaves it unusable)
    return len(files), time.perf_counter() - start


def pipeline(folder: Path, work: Path, run: int) -> tuple[int, float]:
    """`run_ingest` over the folder as an ImageFolder source: (inputs, seconds)."""
    cfg = config_from_dict(
        {
            "sources": [{"kind": "imagefolder", "name": "bench", "path": str(folder)}],
            "storage": {"root": str(work / "artifacts"), "lineage_db": str(work / "l.duckdb")},
        }
    )
    start = time.perf_counter()
    report = run_ingest(
        cfg, f"run{run}", ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db), "b"
    )
    elapsed = time.perf_counter() - start
    assert report.counts.reconciles and report.counts.quarantined == 0
    return report.counts.inputs, elapsed


def measure(name: str, folder: Path, work: Path, repeats: int) -> str:
    """Median of `repeats` alternating runs of both; one Markdown table row."""
    base_s, pipe_s = [], []
    for r in range(repeats):
        n, s = baseline(folder)
        base_s.append(s)
        m, t = pipeline(folder, work, r)
        pipe_s.append(t)
        assert n == m, f"{name}: baseline saw {n} files, pipeline {m}"
    b, p = statistics.median(base_s), statistics.median(pipe_s)
    print(f"{name}: {n} images, baseline {n / b:,.0f}/s, pipeline {n / p:,.0f}/s")
    return f"| {name} | {n} | {n / b:,.0f} | {n / p:,.0f} | {p / b:.1f}x |"


# What profiling found and what changed (2026-12-01), kept beside the figures it explains.
PROFILE = """\
Profile (cProfile of `run_ingest` on RSSCN7, this machine): Pillow's decode is the largest
single item and the baseline pays it too; the rest was spread over (a) the ImageFolder source
resolving its root with `os.path.realpath` for every file, plus fsspec's `info` + `open` per
file (0.60 s for 1,400 files against 0.10 s for a plain read loop); (b) `records.to_table`
deep-copying every Sample through `dataclasses.asdict` (0.19 s against 0.007 s for attribute
reads); (c) two DuckDB connections with the lineage DDL each; (d) the JPEG trailer scan walking
entropy-coded data 0xFF by 0xFF in Python. Fixed: (d) one regex search, (c) samples and
quarantine lineage rows in one transaction (`LineageStore.replace_partitions`): one A/B run,
SynthRS 2.52x -> 1.80x, RSSCN7 1.98x -> 1.83x; then (a) the root resolved once per listing
(`sources/files.RootGuard`) and (b) attribute reads. The figures above include all four. What
remains (one profiled RSSCN7 run after the fixes, 0.87 s): Pillow decode 0.18 s, which the
baseline pays too; `decode_image` 0.41 s in all (verify, load, EXIF and mode checks); the
source's iteration 0.27 s, 0.075 s of it fsspec's path stripping (3 calls per file); lineage
connect and DDL 0.07 s. The next step would be reading files with plain `open` on local roots
and decoding once instead of verify-then-load; not done. Ratios between runs moved by +-0.3x on
this shared machine."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthrs", type=int, default=None, help="tiles (default 2000)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each (default 3)")
    add_output_options(parser, "200 SynthRS tiles, 1 repeat")
    args = parser.parse_args()
    args.synthrs = args.synthrs or (200 if args.quick else 2000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        render_rate = render_synthrs(tmp / "synthrs", args.synthrs)
        notes.append(f"SynthRS rendering alone: {render_rate:,.0f} tiles/s (64 px, PNG).")
        rows.append(measure("SynthRS 64 px PNG", tmp / "synthrs", tmp / "w1", args.repeats))
        if RSSCN7.is_dir():
            rows.append(measure("RSSCN7 128 px JPEG", RSSCN7, tmp / "w2", args.repeats))
        else:
            msg = f"RSSCN7 skipped: {RSSCN7} is absent (it lives beside the repository)."
            print(msg)
            notes.append(msg)
    body = "\n".join(
        [
            "## Ingest throughput (`python -m benchmarks.ingest`)",
            "",
            f"Machine: {describe()}; shared with other jobs while it ran. Median of "
            f"{args.repeats} alternating runs.",
            "Baseline: a plain loop that reads each file, sha256-hashes it, and verifies and",
            "decodes it with Pillow (`verify()`, then `load()`). Pipeline: `run_ingest` (an",
            "ImageFolder source with its path checks, JPEG trailer stripping, hash, dedup, decode",
            "and verify, EXIF orientation, normalise to RGB, keep the original bytes when nothing",
            "changed or re-encode as PNG, Parquet manifest + images, DuckDB lineage, staged",
            "publish). Target: pipeline time <= 1.5x the baseline.",
            "",
            "| data | images | baseline img/s | pipeline img/s | pipeline time / baseline |",
            "|---|---|---|---|---|",
            *rows,
            "",
            *notes,
            "",
            PROFILE,
        ]
    )
    write_section("ingest", body, results_file(args))
    print(body)


if __name__ == "__main__":
    main()
