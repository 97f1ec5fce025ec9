"""Nightly re-curation cost: one new batch against a full recompute of the same assets.

    .venv/bin/python -m benchmarks.nightly [--history 4]       # from the repo root
    .venv/bin/python -m benchmarks.nightly --quick [--out DIR]   # 1 historic batch: a smoke

Materializes `--history` batches and the current scorer on the tiny preset, then times (a) the
nightly path for one new batch (the runs the nightly sensor and the automation conditions
launch: ingest + captions + pairs of the batch, pair_scores[(current, batch)], curated_subsets
[current]) and (b) the same assets recomputed over all batches (multi-partition backfill runs).
Both run in process through Dagster, so run start-up (seconds per run under the daemon) is not
counted. Results go to benchmarks/RESULTS.md (under --out DIR instead; nowhere for --quick
alone).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

from benchmarks.machine import add_output_options, describe, results_file, write_section
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

    def nightly(self, batch: str) -> float:
        """The new batch's three runs: batch assets, its scores, the re-selection."""
        start = time.perf_counter()
        self.instance.add_dynamic_partitions("batch", [batch])
        self.run(BATCH_ASSETS, partition_key=batch)
        self.run([pair_scores], partition_key=self.key(batch))
        self.run([curated_subsets], partition_key=self.version)
        return time.perf_counter() - start

    def full(self, batches: list[str]) -> float:
        """The same assets over every batch, as backfill runs of up to 8 partitions."""
        start = time.perf_counter()
        for i in range(0, len(batches), 8):
            part = batches[i : i + 8]
            self.run(BATCH_ASSETS, tags=_range(part[0], part[-1]))
            self.run([pair_scores], tags=_range(self.key(part[0]), self.key(part[-1])))
        self.run([curated_subsets], partition_key=self.version)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=None,
                        help="batches before the new one (default 4)")  # fmt: skip
    add_output_options(parser, "1 historic batch")
    args = parser.parse_args()
    args.history = args.history or (1 if args.quick else 4)
    warnings.simplefilter("ignore")
    history = [f"2026-11-{d:02d}" for d in range(1, args.history + 1)]
    new = f"2026-11-{args.history + 1:02d}"
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        bench = Bench(write_config(Path(tmp)), instance)
        instance.add_dynamic_partitions("batch", history)
        instance.add_dynamic_partitions("scorer_version", [bench.version])
        setup = time.perf_counter()
        for batch in history:
            bench.run(BATCH_ASSETS, partition_key=batch)
        bench.run([score_model], partition_key=bench.version)
        for batch in history:
            bench.run([pair_scores], partition_key=bench.key(batch))
        print(f"history: {len(history)} batches + scorer in {time.perf_counter() - setup:.1f} s")
        nightly_s = bench.nightly(new)
        print(f"nightly (1 new batch): {nightly_s:.1f} s")
        full_s = bench.full([*history, new])
        print(f"full recompute ({len(history) + 1} batches): {full_s:.1f} s")
    ratio = nightly_s / full_s
    print(f"nightly / full = {ratio:.2f}")
    body = "\n".join(
        [
            "## Nightly re-curation vs full recompute (`python -m benchmarks.nightly`)",
            "",
            f"Machine: {describe()}. Tiny preset (32 inputs per batch), {len(history)} historic",
            "batches plus one new one; in-process Dagster runs (run start-up not counted).",
            "Nightly: ingest + captions + pairs of the new batch, pair_scores[(current, new)],",
            "curated_subsets[current]. Full: the same assets over every batch (backfill runs).",
            "",
            "| batches | nightly s | full recompute s | nightly / full |",
            "|---|---|---|---|",
            f"| {len(history)} + 1 | {nightly_s:.1f} | {full_s:.1f} | {ratio:.2f} |",
            "",
            "The nightly cost is one batch's work plus a re-selection over every scored batch",
            "(cheap), so it should stay nearly flat as history grows while the full recompute",
            f"grows linearly; only the {len(history)} + 1 point was measured in this run.",
        ]
    )
    write_section("nightly", body, results_file(args))
    print(body)


if __name__ == "__main__":
    main()
