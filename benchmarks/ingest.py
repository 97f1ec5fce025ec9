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

from benchmarks.machine import add_output_options, describe, results_file, run_info, write_section
from benchmarks.timing import CPU, alternate
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
    """Median of `repeats` alternating runs of both (order flipped each repeat); one row."""
    counts, runs = {}, iter(range(10**6))

    def base() -> float:
        counts["baseline"], s = baseline(folder)
        return s

    def pipe() -> float:
        counts["pipeline"], s = pipeline(folder, work, next(runs))
        return s

    times = alternate({"baseline": base, "pipeline": pipe}, repeats)
    n = counts["baseline"]
    assert n == counts["pipeline"], f"{name}: baseline saw {n} files, pipeline {counts}"
    b, p = (statistics.median(v) for v in times.values())
    cpu = statistics.median(CPU["pipeline"]) / statistics.median(CPU["baseline"])
    print(f"{name}: {n} images, baseline {n / b:,.0f}/s, pipeline {n / p:,.0f}/s")
    return f"| {name} | {n} | {n / b:,.0f} | {n / p:,.0f} | {p / b:.2f}x | {cpu:.2f}x |"


# What profiling found and what changed (2026-12-01), kept beside the figures it explains.
PROFILE = """\
Profile (cProfile of `run_ingest` on RSSCN7, this machine). 2026-12-01: Pillow's decode is the
largest single item and the baseline pays it too; the rest was spread over (a) the ImageFolder
source resolving its root with `os.path.realpath` for every file, plus fsspec's `info` + `open`
per file; (b) `records.to_table` deep-copying every Sample through `dataclasses.asdict`; (c) two
DuckDB connections with the lineage DDL each; (d) the JPEG trailer scan walking entropy-coded
data 0xFF by 0xFF in Python. Fixed (d) and (c): SynthRS 2.52x -> 1.80x, RSSCN7 1.98x -> 1.83x
(one A/B run); then (a) the root resolved once per listing and (b) attribute reads: 1.6x / 1.8x.
2026-12-02: the source still cost 0.23 s of a 0.82 s profiled run (a `realpath` and an
`os.stat` per file, fsspec's walk and file objects, `relpath`). Local roots are now listed with
`os.scandir` by fsspec's own rules (linked folders listed, not entered; a test checks the
listing equals `fs.find`), and a plain file (regular, not a link) is read with builtin `open`
and needs neither `realpath` nor `stat`; image blobs are written without a Parquet dictionary
(which hashed every blob: 0.030 -> 0.020 s for RSSCN7's 9.5 MB). Measured in CPU time after
these: source + decode + dedup (`ingest_items` with no writes) are 1.05x the baseline; what
remains is the writes the baseline does not do: one DuckDB open and close (0.025 s, whatever
the DDL: skipping it saved nothing measurable) and the lineage insert (0.03 s), the Parquet
manifest, images and publish (0.05 s). Those are per batch, so their share falls with larger
batches. The decode itself is at parity: `decode_image` 0.202 s against the baseline's
verify + open + load 0.211 s (CPU, medians of 7). Ratios between runs moved by +-0.15x on
this shared machine."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthrs", type=int, default=None, help="tiles (default 2000)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each (default 5)")
    add_output_options(parser, "200 SynthRS tiles, 1 repeat")
    args = parser.parse_args()
    args.synthrs = args.synthrs or (200 if args.quick else 2000)
    args.repeats = args.repeats or (1 if args.quick else 5)
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
            f"Machine: {describe()}; {run_info()}; shared with other jobs while it ran. "
            f"Median of {args.repeats} alternating runs (order flipped each repeat); CPU "
            "seconds of this process beside wall time.",
            "Baseline: a plain loop that reads each file, sha256-hashes it, and verifies and",
            "decodes it with Pillow (`verify()`, then `load()`). Pipeline: `run_ingest` (an",
            "ImageFolder source with its path checks, JPEG trailer stripping, hash, dedup, a full",
            "decode (what proves a file whole), EXIF orientation, normalise to RGB, keep the",
            "original bytes when nothing changed or re-encode as PNG, Parquet manifest + images,",
            "DuckDB lineage, staged publish). Target: pipeline time <= 1.5x the baseline.",
            "",
            "| data | images | baseline img/s | pipeline img/s | pipeline / baseline, wall "
            "| pipeline / baseline, CPU |",
            "|---|---|---|---|---|---|",
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
