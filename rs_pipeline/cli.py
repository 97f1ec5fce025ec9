"""`rs-pipeline`: run the demo, query lineage."""

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


def cmd_demo(args: argparse.Namespace) -> int:
    """Materialize the asset graph for one batch on the local Dagster instance."""
    from rs_pipeline.launch import materialize_batch, materialize_scorers

    result = materialize_batch(args.config, args.batch)
    print(result.describe())
    if not result.success:
        return 1
    scored = materialize_scorers(args.config, [args.batch])
    print(scored.describe())
    return 0 if scored.success else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rs-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the graph for one batch (default: demo)")
    demo.add_argument("--config", default="demo", help="preset name or YAML path")
    demo.add_argument("--batch", default="demo", help="batch partition key")
    demo.set_defaults(func=cmd_demo)
    lineage = sub.add_parser("lineage", help="counts of a batch from the lineage store")
    lineage.add_argument("--config", default="demo", help="preset name or YAML path")
    lineage.add_argument("--batch", required=True)
    lineage.set_defaults(func=cmd_lineage)
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
