"""`rs-pipeline`: run the graph on a configuration (or the demo), query lineage, serve a scorer."""

from __future__ import annotations

import argparse
import sys

from rs_pipeline.core.config import ConfigError, load_config
from rs_pipeline.core.lineage import LineageStore, batch_summary


def _table(title: str, header: tuple[str, ...], rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))  # noqa: E731
    body = [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    return "\n".join([title, *body, ""])


def cmd_lineage(args: argparse.Namespace) -> int:
    """Print a batch's counts by source, class and quarantine reason."""
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
    return 0


def _report_summary(root: str) -> str:
    """The headline table, its paired differences and the report's files, from report.json."""
    import json

    from rs_pipeline.core.artifacts import ArtifactStore
    from rs_pipeline.core.evaluation.report import markdown_table, paired_markdown
    from rs_pipeline.core.evaluation.summary import ReportTable
    from rs_pipeline.core.layout import REPORT_ASSET

    store = ArtifactStore(root)
    doc = json.loads(store.fs.cat_file(store.path(REPORT_ASSET, "report.json")))
    table = ReportTable.from_dict(doc["table"])
    files = "\n".join(f"  {kind}: {url}" for kind, url in doc["files"].items())
    seeds = ", ".join(str(s) for s in doc["seeds"])
    headline = f"{markdown_table(table)}\n(mean ± std over seeds {seeds})\n\n"
    if len(table.seeds) >= 2:  # one seed has no spread to pair against
        headline += f"{paired_markdown(table)}\n\n"
    return f"{headline}report files:\n{files}"


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole graph on a configuration; print the headline table and report paths."""
    from rs_pipeline.launch import run_all

    cfg = load_config(args.config)
    result = run_all(args.config, args.batch or [getattr(args, "batch_default", "run")])
    print(f"batches {result.batch}: {'succeeded' if result.success else 'FAILED'}")
    if not result.success:
        print("a stage failed: its run log is in the Dagster UI (make dev)", file=sys.stderr)
        return 1
    print(_report_summary(cfg.storage.root))
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
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="run the whole graph on the built-in demo preset")
    demo.add_argument("--config", default="demo", help="preset name or YAML path")
    demo.add_argument("--batch", action="append", help="batch key (default: demo)")
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


if __name__ == "__main__":
    sys.exit(main())
