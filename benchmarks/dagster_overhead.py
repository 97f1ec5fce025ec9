"""Dagster's cost: the whole graph through `dagster.materialize` against the core stages called
directly in the same order, in one run.

    .venv/bin/python -m benchmarks.dagster_overhead [--preset tiny] [--repeats 3]
    .venv/bin/python -m benchmarks.dagster_overhead --quick [--out DIR]  # 1 repeat: a smoke

Run from the repo root. Dagster side: `launch.run_all` (what `rs-pipeline run` calls: one
in-process `dg.materialize` per batch, per scorer version x asset x partition, per selection x
asset, then the report) on a fresh test instance, the CLI's quiet console logger. Direct side:
the core `run_*` functions of the same assets in the same order on the same configuration,
with no Dagster in the loop. Every repeat starts from empty storage (nothing is reused), and
the A/B order flips each repeat. Results go to benchmarks/RESULTS.md (under --out DIR
instead; nowhere for --quick alone).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from pathlib import Path

from benchmarks.machine import add_output_options, describe, results_file, run_info, write_section
from benchmarks.timing import CPU, alternate, ratios, timed

BATCH = "bench"

# What a profile found (cProfile of one warm `tiny` run through Dagster, 2026-12-01, 25.4 s on
# the shared machine); kept beside the figures because it says what the overhead is made of.
PROFILE = (
    "Where the Dagster time goes (cProfile of one warm tiny run, 25.4 s under load): the "
    "sqlite event log, 119 events at ~32 ms each (3.8 s: a connection, an insert and a commit "
    "per event), a fresh per-run event-log database for each of the 7 runs plus the test "
    "instance (2.4 s), partition-key lookups (~0.7 s), and our own metadata previews "
    "(histograms, thumbnails, tables: ~1.3 s). The first three are Dagster's local sqlite "
    "storage, which production replaces with PostgreSQL (infra/dagster.prod.yaml); they are "
    "per run and per event, not per sample, so their share falls as a run does more work "
    "(10.6% of CPU time on the demo). Not fixed here: fewer, larger runs (`BackfillPolicy."
    "multi_run`) and fewer log events per step are the levers."
)


# The graph with the least work inside its assets: one untrained scorer (random), one fine-tune
# seed. Every asset and kind of materialization stays; a smaller denominator makes the
# overhead's share larger, so this is the stricter test.
LIGHT = {"scoring": {"scorers": [{"name": "random", "backend": "random"}], "current": "random"},
         "finetune": {"seeds": [0]}}  # fmt: skip


def _config(work: Path, preset: str) -> str:
    """The preset plus LIGHT, on storage under `work`."""
    import yaml

    storage = {"root": str(work / "artifacts"), "lineage_db": str(work / "lineage.duckdb"),
               "work_dir": str(work / "work")}  # fmt: skip
    path = work / "config.yaml"
    light = LIGHT if preset == "tiny" else {}  # the demo runs as `make demo` runs it
    path.write_text(yaml.safe_dump({"preset": preset, "storage": storage, **light}))
    return str(path)


def through_dagster(config: str) -> None:
    import dagster as dg

    from rs_pipeline.launch import QUIET_RUN_CONFIG, Watch, run_all

    with dg.instance_for_test() as instance:
        result = run_all(config, [BATCH], instance, Watch(run_config=QUIET_RUN_CONFIG))
    if not result.success:
        raise RuntimeError(f"run_all failed: {result.describe()}")


def direct(config: str) -> None:
    """The assets' core functions, in `launch.run_all`'s order, without Dagster."""
    from rs_pipeline.core.artifacts import ArtifactStore
    from rs_pipeline.core.captions.stage import run_captions
    from rs_pipeline.core.config import load_config
    from rs_pipeline.core.evaluation.stage import run_evaluation_report
    from rs_pipeline.core.finetune.stage import run_clip_checkpoints
    from rs_pipeline.core.ingest.stage import run_ingest
    from rs_pipeline.core.lineage import LineageStore
    from rs_pipeline.core.pairs.stage import run_pairs
    from rs_pipeline.core.scoring.apply import run_pair_scores
    from rs_pipeline.core.scoring.stage import run_score_model
    from rs_pipeline.core.scoring.versions import versions
    from rs_pipeline.core.selection.stage import run_curated_subsets
    from rs_pipeline.core.vlm.bon_stage import run_bon_eval
    from rs_pipeline.core.vlm.rl_stage import run_vlm_rl_checkpoints
    from rs_pipeline.core.vlm.stage import run_vlm_checkpoints
    from rs_pipeline.launch import TRAINS_ON, selections_of

    cfg = load_config(config)
    store, lineage, run_id, quiet = (
        ArtifactStore(cfg.storage.root, cfg.storage.storage_options),
        LineageStore(cfg.storage.lineage_db),
        "direct",
        lambda _: None,
    )
    for stage in (run_ingest, run_captions, run_pairs):
        stage(cfg, BATCH, store, lineage, run_id)
    for version in versions(cfg.scoring):
        run_score_model(cfg, version, store, log=quiet)
        run_pair_scores(cfg, version, BATCH, store, lineage, run_id)
        run_curated_subsets(cfg, version, store, lineage, run_id)
    per_selection = {
        "clip_checkpoints": run_clip_checkpoints,
        "vlm_checkpoints": run_vlm_checkpoints,
        "bon_eval": run_bon_eval,
        "vlm_rl_checkpoints": run_vlm_rl_checkpoints,
    }
    for name in selections_of(cfg):
        for asset, run in per_selection.items():
            if TRAINS_ON[asset](cfg, name):
                run(cfg=cfg, selection=name, store=store, lineage=lineage, run_id=run_id, log=quiet)
    run_evaluation_report(cfg, store, lineage)


def fresh(fn, preset: str):
    """`fn` on a config over new empty storage: nothing from an earlier repeat is reused."""

    def run() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            config = _config(Path(tmp), preset)
            return timed(lambda: fn(config))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=["tiny", "demo"],
        help="the graph's preset (default tiny; demo takes ~8 min a side)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="A/B repeats (default 3)")
    add_output_options(parser, "1 repeat")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from rs_pipeline.core.config import load_config
    from rs_pipeline.launch import step_count

    repeats = 1 if args.quick else args.repeats
    runs = alternate(
        {
            "Dagster (`launch.run_all`)": fresh(through_dagster, args.preset),
            "direct core `run_*` calls": fresh(direct, args.preset),
        },
        repeats,
    )
    dag, core = (statistics.median(v) for v in runs.values())
    wall_ratio, cpu_ratio = ratios(runs)
    with tempfile.TemporaryDirectory() as tmp:
        n_runs = step_count(load_config(_config(Path(tmp), args.preset)), [BATCH])
    demo_runs = step_count(load_config("demo"), [BATCH])
    per_run = (dag - core) / n_runs
    rows = [f"| {k} | {statistics.median(v):.1f} ({', '.join(f'{s:.1f}' for s in v)}) | "
            f"{statistics.median(CPU[k]):.1f} |" for k, v in runs.items()]  # fmt: skip
    body = "\n".join(
        [
            "## Dagster overhead (`python -m benchmarks.dagster_overhead`)", "",
            f"Machine: {describe()}; {run_info()}. The `{args.preset}` preset"
            + (" with one scorer (random: nothing to train) and one fine-tune seed"
               if args.preset == "tiny" else " as `make demo` runs it")
            + f", one batch: every asset, {n_runs} materializations. {repeats} alternating "
            "repeats, each on empty storage and a fresh test instance; medians. Shared "
            "machine: other jobs ran meanwhile, so CPU seconds (this process and its "
            "finished children) are shown beside wall time.", "",
            "| path | wall s, median (each repeat) | CPU s, median |", "|---|---|---|", *rows, "",
            f"Overhead: {dag - core:.1f} s wall = **{100 * (1 - 1 / wall_ratio):.1f}%** of the "
            f"Dagster run ({100 * (1 - 1 / cpu_ratio):.1f}% in CPU time; {per_run:.2f} s per "
            "materialization; target < 10%).",
            f"The demo makes {demo_runs} materializations of the same kinds, each doing far "
            f"more work than here; at {per_run:.2f} s each that is "
            f"{per_run * demo_runs:.0f} s of Dagster time per demo run, against a demo that "
            "is minutes long (`--preset demo` measures it directly, ~8 min a side).", "",
            PROFILE,
        ]
    )  # fmt: skip
    name = "dagster_overhead" if args.preset == "tiny" else f"dagster_overhead_{args.preset}"
    write_section(name, body, results_file(args))
    print(body)


if __name__ == "__main__":
    main()
