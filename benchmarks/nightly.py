"""Nightly re-curation cost: one new batch against a full recompute of the same assets.

    .venv/bin/python -m benchmarks.nightly [--history 2 4 8 16]   # from the repo root
    .venv/bin/python -m benchmarks.nightly --quick [--out DIR]     # 1 and 2 batches: a smoke

For each `--history` count, materializes that many batches and the current scorer on the tiny
preset (one instance, history growing between points), then times (a) the
nightly path for one new batch (the runs the nightly sensor and the automation conditions
launch: ingest + captions + pairs of the batch, pair_scores[(current, batch)], curated_subsets
[current]) and (b) the same assets recomputed over all batches (multi-partition backfill runs).
Both run in process through Dagster, so run start-up (seconds per run under the daemon) is not
counted. Results go to benchmarks/RESULTS.md (under --out DIR instead; nowhere for --quick
alone).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

from benchmarks.machine import add_output_options, describe, results_file, run_info, write_section
from benchmarks.timing import cpu_seconds
from rs_pipeline.core.config import load_config
from rs_pipeline.core.scoring.versions import current_version
from rs_pipeline.definitions import BATCH_ASSETS
from rs_pipeline.defs.resources import build_resources
from rs_pipeline.defs.scoring.assets import pair_scores, score_model
from rs_pipeline.defs.selection.assets import curated_subsets
from rs_pipeline_tests.factories import write_config


def _range(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


class Bench:
    """One instance and configuration; each step is one in-process Dagster run."""

    def __init__(self, config: str, instance: dg.DagsterInstance):
        self.config, self.instance = config, instance
        self.resources = build_resources(config)
        self.version = current_version(load_config(config))

    def run(self, assets, **kwargs) -> None:
        result = dg.materialize(assets, instance=self.instance, resources=self.resources, **kwargs)
        assert result.success

    def key(self, batch: str) -> str:
        return str(dg.MultiPartitionKey({"scorer_version": self.version, "batch": batch}))

    def nightly(self, batch: str) -> tuple[float, float]:
        """(wall, CPU) seconds of the new batch's three runs: batch assets, its scores, the
        re-selection."""
        start, cpu = time.perf_counter(), cpu_seconds()
        self.instance.add_dynamic_partitions("batch", [batch])
        self.run(BATCH_ASSETS, partition_key=batch)
        self.run([pair_scores], partition_key=self.key(batch))
        self.run([curated_subsets], partition_key=self.version)
        return time.perf_counter() - start, cpu_seconds() - cpu

    def full(self, batches: list[str]) -> tuple[float, float]:
        """(wall, CPU) seconds of the same assets over every batch, as backfill runs of up to 8
        partitions."""
        start, cpu = time.perf_counter(), cpu_seconds()
        for i in range(0, len(batches), 8):
            part = batches[i : i + 8]
            self.run(BATCH_ASSETS, tags=_range(part[0], part[-1]))
            self.run([pair_scores], tags=_range(self.key(part[0]), self.key(part[-1])))
        self.run([curated_subsets], partition_key=self.version)
        return time.perf_counter() - start, cpu_seconds() - cpu


def _day(i: int) -> str:
    return f"2026-11-{i:02d}"


def _median_of(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """(median wall, median CPU) of repeated (wall, CPU) runs."""
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def sweep(bench: Bench, points: list[int], repeats: int) -> list[tuple[int, tuple, tuple]]:
    """(historic batches, nightly (wall, CPU) s, full (wall, CPU) s) at each point, growing
    one instance's history.

    The batch a nightly run adds stays as history for the next point, so each point costs only
    the batches it adds; a full recompute leaves the state as it found it (same inputs), so it
    is repeated `repeats` times and the medians kept. A nightly run adds a batch, so it runs
    once per point.
    """
    batches: list[str] = []

    def grow(n: int, score: bool) -> None:
        while len(batches) < n:
            batches.append(_day(len(batches) + 1))
            bench.instance.add_dynamic_partitions("batch", [batches[-1]])
            bench.run(BATCH_ASSETS, partition_key=batches[-1])
            if score:
                bench.run([pair_scores], partition_key=bench.key(batches[-1]))

    grow(points[0], score=False)
    bench.run([score_model], partition_key=bench.version)  # trained once, on the first history
    for batch in batches:
        bench.run([pair_scores], partition_key=bench.key(batch))
    rows = []
    for history in points:
        grow(history, score=True)
        new = _day(len(batches) + 1)
        nightly_s = bench.nightly(new)
        batches.append(new)
        full_s = _median_of([bench.full(batches) for _ in range(repeats)])
        rows.append((history, nightly_s, full_s))
        print(f"{history} + 1 batches: nightly {nightly_s} s, full {full_s} s", flush=True)
    return rows


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(intercept, slope, R^2) of the least-squares line through (xs, ys)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return intercept, slope, 1.0 - ss_res / ss_tot if ss_tot else 1.0


def _verdict(rows: list[tuple[int, tuple, tuple]]) -> list[str]:
    (h0, n0, f0), (h1, n1, f1) = rows[0], rows[-1]
    lines = [
        f"From {h0} + 1 to {h1} + 1 batches ({(h1 + 1) / (h0 + 1):.1f}x the data) the nightly "
        f"run's CPU time went {n0[1]:.1f} -> {n1[1]:.1f} s ({n1[1] / n0[1]:.2f}x) and the full "
        f"recompute's {f0[1]:.1f} -> {f1[1]:.1f} s ({f1[1] / f0[1]:.2f}x)."
    ]
    if len(rows) >= 3:
        batches = [h + 1 for h, _, _ in rows]
        a, b, r2 = linear_fit(batches, [f[1] for _, _, f in rows])
        na, nb, _ = linear_fit(batches, [n[1] for _, n, _ in rows])
        lines.append(
            f"Least-squares lines through the CPU medians: full = {a:.1f} s + {b:.2f} s per "
            f"batch (R^2 = {r2:.3f}); nightly = {na:.1f} s + {nb:.3f} s per batch. A full "
            "recompute is linear in the batches with a fixed part (run and model start-up, "
            "the one re-selection); the fixed part is why its per-batch column falls."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=None,
                        help="historic batch counts to sweep (default 2 4 8 16)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=None,
                        help="full recomputes per point, medians kept (default 3)")  # fmt: skip
    add_output_options(parser, "1 and 2 historic batches, 1 repeat")
    args = parser.parse_args()
    points = sorted(set(args.history or ([1, 2] if args.quick else [2, 4, 8, 16])))
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        bench = Bench(write_config(Path(tmp)), instance)
        instance.add_dynamic_partitions("scorer_version", [bench.version])
        repeats = args.repeats or (1 if args.quick else 3)
        rows = sweep(bench, points, repeats)
    table = [f"| {h} + 1 | {n[0]:.1f} | {n[1]:.1f} | {f[0]:.1f} | {f[1]:.1f} | "
             f"{f[1] / (h + 1):.2f} | {n[1] / f[1]:.2f} |" for h, n, f in rows]  # fmt: skip
    body = "\n".join(
        [
            "## Nightly re-curation vs full recompute (`python -m benchmarks.nightly`)",
            "",
            f"Machine: {describe()}; {run_info()}. Tiny preset (32 inputs per batch); one",
            "instance whose history grows between points (the scorer is trained once, on the",
            "first point's history). In-process Dagster runs (run start-up not counted).",
            "Nightly: ingest + captions + pairs of the new batch, pair_scores[(current, new)],",
            "curated_subsets[current]. Full: the same assets over every batch (backfill runs of",
            f"up to 8 partitions), median of {repeats} repeats per point; the nightly run adds",
            "its batch, so it runs once per point. On a machine shared with other jobs wall",
            "time moves with their load, CPU seconds (this process and its finished children)",
            "much less.",
            "",
            "| batches | nightly wall s | nightly CPU s | full wall s | full CPU s | "
            "full CPU s per batch | nightly / full (CPU) |",
            "|---|---|---|---|---|---|---|",
            *table,
            "",
            *_verdict(rows),
            "Nightly should stay nearly flat (one batch's work plus a re-selection over every",
            "scored batch, which grows slowly) while the full recompute grows linearly.",
        ]
    )
    write_section("nightly", body, results_file(args))
    print(body)


if __name__ == "__main__":
    main()
