"""`rs-pipeline`: run the graph on a configuration (or the demo), query lineage, serve a scorer."""

from __future__ import annotations

import argparse
import sys
import time

from rs_pipeline.core.config import ConfigError, PipelineConfig, load_config
from rs_pipeline.core.lineage import LineageStore, batch_summary
from rs_pipeline.core.progress import clock


class UsageError(Exception):
    """A mistake in the command line or what it points at: printed as the CLI's own message,
    exit code 2, before any work starts."""


def _table(title: str, header: tuple[str, ...], rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))  # noqa: E731
    body = [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    return "\n".join([title, *body, ""])


def cmd_lineage(args: argparse.Namespace) -> int:
    """Print a batch's counts by source, class and quarantine reason, and the reconciliation
    inputs = unique + duplicates + quarantined (duplicates merged into an admitted image)."""
    cfg = load_config(args.config)
    summary = batch_summary(LineageStore(cfg.storage.lineage_db), args.batch)
    if not summary.by_source:
        print(f"no rows for batch {args.batch!r} in {cfg.storage.lineage_db}", file=sys.stderr)
        return 1
    print(
        _table(
            f"batch {args.batch}: by source",
            ("source", "admitted", "quarantined"),
            summary.by_source,
        )
    )
    print(_table("by class", ("class", "samples"), summary.by_class))
    print(_table("quarantine by reason", ("reason", "inputs"), summary.by_reason or [("-", 0)]))
    print(
        f"inputs {summary.inputs} = unique {summary.unique} + duplicates {summary.duplicates}"
        f" + quarantined {summary.quarantined}"
    )
    return 0


def _report_summary(cfg: PipelineConfig) -> str:
    """The headline table, its paired differences and the report's files, from report.json."""
    import json

    from rs_pipeline.core.artifacts import store_of
    from rs_pipeline.core.evaluation.report import markdown_table, paired_markdown
    from rs_pipeline.core.evaluation.summary import ReportTable
    from rs_pipeline.core.layout import REPORT_ASSET

    store = store_of(cfg)
    doc = json.loads(store.fs.cat_file(store.path(REPORT_ASSET, "report.json")))
    table = ReportTable.from_dict(doc["table"])
    files = "\n".join(f"  {kind}: {url}" for kind, url in doc["files"].items())
    seeds = ", ".join(str(s) for s in doc["seeds"])
    headline = f"{markdown_table(table)}\n(mean ± std over seeds {seeds})\n\n"
    if len(table.seeds) >= 2:  # one seed has no spread to pair against
        headline += f"{paired_markdown(table)}\n\n"
    return f"{headline}report files:\n{files}"


_SOURCE_KINDS = {"imagefolder": "folder", "manifest": "file"}


def check_run_inputs(cfg: PipelineConfig, batches: list[str]) -> None:
    """Refuse, before any work, batch keys that cannot be folder names and file sources whose
    path (with `{batch}` substituted) does not exist; raises UsageError saying what to fix."""
    from fsspec.core import url_to_fs

    from rs_pipeline.core.names import check_batch_key

    for batch in batches:
        try:
            check_batch_key(batch)
        except ValueError as err:
            raise UsageError(f"--batch: {err}") from None
    for i, source in enumerate(cfg.sources):
        if source.kind not in _SOURCE_KINDS:
            continue
        for batch in batches:
            url = source.path.replace("{batch}", batch)
            try:
                fs, path = url_to_fs(url, **source.storage_options)
                found = fs.exists(path)  # local: a stat; remote: one cheap request
            except Exception as err:  # noqa: BLE001 - any reason it cannot be reached
                raise UsageError(
                    f"source {source.name!r} (sources[{i}].path): cannot reach {url}: {err}; "
                    "check the URL, its storage_options and credentials"
                ) from None
            if not found:
                what = _SOURCE_KINDS[source.kind]
                raise UsageError(
                    f"source {source.name!r}: {what} {url} does not exist"
                    + (f" for batch {batch!r}" if "{batch}" in source.path else "")
                    + f"; set sources[{i}].path to an existing {what}"
                )


class ProgressView:
    """One line per finished step: done/total, stage, partition, its time, elapsed, ETA (from
    the mean step time so far)."""

    def __init__(self, out=None) -> None:
        self.out, self.start = out, time.monotonic()

    def __call__(self, step) -> None:
        elapsed = time.monotonic() - self.start
        eta = elapsed / step.done * (step.total - step.done)
        part = f" [{step.partition}]" if step.partition else ""
        status = "ok" if step.success else "FAILED"
        width = len(str(step.total))
        print(
            f"[{step.done:>{width}}/{step.total}] {step.stage}{part}  {status} in "
            f"{step.seconds:.1f}s  elapsed {clock(elapsed)}  ETA {clock(eta)}",
            file=self.out or sys.stdout,
            flush=True,
        )


def _quiet_warnings() -> None:
    """Dagster's Beta/Preview warnings say nothing to someone running the pipeline."""
    import warnings

    import dagster as dg

    for name in ("BetaWarning", "PreviewWarning", "SupersessionWarning", "ExperimentalWarning"):
        if isinstance(category := getattr(dg, name, None), type):
            warnings.filterwarnings("ignore", category=category)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole graph on a configuration; print progress, the headline table and report
    paths (`--verbose`: Dagster's own event stream as well)."""
    verbose = getattr(args, "verbose", False)
    if not verbose:
        _quiet_warnings()  # before the graph is imported: its definitions warn
    from rs_pipeline.launch import QUIET_RUN_CONFIG, Watch, run_all

    cfg = load_config(args.config)
    batches = args.batch or [getattr(args, "batch_default", "run")]
    check_run_inputs(cfg, batches)
    watch = Watch(on_step=ProgressView(), run_config=None if verbose else QUIET_RUN_CONFIG)
    result = run_all(args.config, batches, watch=watch)
    print(f"batches {result.batch}: {'succeeded' if result.success else 'FAILED'}")
    if not result.success:
        print("a stage failed: its run log is in the Dagster UI (make dev)", file=sys.stderr)
        return 1
    print(_report_summary(cfg))
    print(f"lineage: {cfg.storage.lineage_db}  (rs-pipeline lineage --batch KEY)")
    print("UI:      make dev  (then open http://127.0.0.1:3000)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve one scorer version over HTTP until SIGINT/SIGTERM (which drain, then exit)."""
    from rs_pipeline.core.serving.server import ServeError, serve

    cfg = load_config(args.config)
    try:
        serve(cfg, args.scorer, host=args.host, port=args.port)
    except ServeError as err:
        print(f"rs-pipeline serve: {err}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rs-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole graph on your configuration")
    run.add_argument("--config", required=True, help="YAML path or preset name (tiny, demo)")
    run.add_argument("--batch", action="append", help="batch key, repeatable (default: run)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's event stream too")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="run the whole graph on the built-in demo preset")
    demo.add_argument("--config", default="demo", help="preset name or YAML path")
    demo.add_argument("--batch", action="append", help="batch key (default: demo)")
    demo.add_argument("--verbose", action="store_true", help="show Dagster's event stream too")
    demo.set_defaults(func=cmd_run, batch_default="demo")
    lineage = sub.add_parser("lineage", help="counts of a batch from the lineage store")
    lineage.add_argument("--config", default="demo", help="preset name or YAML path")
    lineage.add_argument("--batch", required=True)
    lineage.set_defaults(func=cmd_lineage)
    serve = sub.add_parser("serve", help="serve one scorer version over HTTP (rewards, scores)")
    serve.add_argument(
        "--scorer",
        required=True,
        metavar="VERSION",
        help="a scorer_version key (e.g. clip-head-3f9a1c) or `current`",
    )
    serve.add_argument("--config", default="demo", help="preset name or YAML path")
    serve.add_argument("--host", default=None, help="bind address (default: serving.host)")
    serve.add_argument("--port", type=int, default=None, help="port (default: serving.port)")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"rs-pipeline: {err}", file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"rs-pipeline {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
