"""Tables and plots of the curation runs kept under benchmarks/results/curation/.

    .venv/bin/python -m benchmarks.curation_report    # rewrites RESULTS.md sections + PNGs
    .venv/bin/python -m benchmarks.curation_report --out DIR   # DIR/RESULTS.md + DIR/plots/

Run from the repo root. Reads only the JSON records `benchmarks/curation.py` wrote (seconds;
never re-runs anything). There is nothing to shrink: --quick only writes nowhere (a check that
it still runs) unless --out is given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.curation_tables import composition_markdown  # noqa: E402
from benchmarks.machine import add_output_options, results_file, write_section  # noqa: E402
from rs_pipeline.core.evaluation.paired import oracle_share, paired, paired_rows  # noqa: E402
from rs_pipeline.core.evaluation.summary import ReportTable  # noqa: E402

RESULTS_DIR = Path(__file__).with_name("results") / "curation"
PLOTS = Path(__file__).with_name("plots")
SCORERS = ("clip-head", "clipscore", "random", "oracle")  # scorer names, table order


def load(name: str) -> dict | None:
    """One run's record, or None when that run was not made."""
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(record: dict) -> ReportTable:
    return ReportTable.from_dict(record["table"])


def _selection(table: ReportTable, scorer: str, percent: float) -> str | None:
    for row in table.rows:
        if row.scorer == scorer and row.percent == percent:
            return row.selection
    return None


def sweep_rows(noises: list[float], tag: str = "_sweep") -> list[dict]:
    """One row per (noise, scorer, ratio): mean, std, paired difference to all@100."""
    out = []
    for noise in noises:
        record = load(f"rsscn7_noise{noise:g}_global{tag}")
        if record is None:
            continue
        table = _table(record)
        column = table.primary_columns[0]
        base = table.row("all@100").cell(column)
        out.append({"noise": noise, "scorer": "all", "percent": 100.0, "mean": base.mean,
                    "std": base.std, "diff": None})  # fmt: skip
        for row in table.rows:
            if row.selection == "all@100":
                continue
            cell = row.cell(column)
            diff = paired(table, row.selection, column, "all@100")
            out.append({"noise": noise, "scorer": row.scorer, "percent": row.percent,
                        "mean": cell.mean, "std": cell.std, "diff": diff})  # fmt: skip
    return out


def sweep_markdown(rows: list[dict]) -> str:
    """Accuracy per (noise, ratio) for each scorer, and the paired gain over all@100."""
    noises = sorted({r["noise"] for r in rows})
    ratios = sorted({r["percent"] for r in rows if r["scorer"] != "all"})
    lines = ["| noise | scorer | " + " | ".join(f"top {p:g}%" for p in ratios) + " |",
             "|---|---|" + "---|" * len(ratios)]  # fmt: skip
    for noise in noises:
        base = next(r for r in rows if r["noise"] == noise and r["scorer"] == "all")
        cells = [f"{base['mean']:.3f} ± {base['std']:.3f}"] + [""] * (len(ratios) - 1)
        lines.append(f"| {noise:g}% | all@100 | " + " | ".join(cells) + " |")
        for scorer in SCORERS:
            cells = []
            for p in ratios:
                r = next((x for x in rows if x["noise"] == noise and x["scorer"] == scorer
                          and x["percent"] == p), None)  # fmt: skip
                d = r and r["diff"]
                cells.append("—" if r is None else f"{r['mean']:.3f} ({d.format() if d else '—'})")
            lines.append(f"| {noise:g}% | {scorer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_sweep(rows: list[dict], noise: float, path: Path) -> None:
    """Accuracy vs ratio at one noise level, one line per scorer, all@100 dashed."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    at = [r for r in rows if r["noise"] == noise]
    for scorer in SCORERS:
        pts = sorted((r["percent"], r["mean"], r["std"]) for r in at if r["scorer"] == scorer)
        if pts:
            xs, ys, es = zip(*pts, strict=True)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=scorer)
    base = next((r for r in at if r["scorer"] == "all"), None)
    if base:
        ax.axhline(base["mean"], ls="--", color="grey", label="all@100")
    ax.set(xlabel="percent of pairs kept", ylabel="zero-shot top-1 (held-out)",
           title=f"RSSCN7, {noise:g}% injected errors")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gain(rows: list[dict], percent: float, path: Path) -> None:
    """Paired gain over all@100 vs noise at one ratio, ± 2 SE, per scorer."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for scorer in SCORERS:
        mine = [r for r in rows if r["scorer"] == scorer and r["percent"] == percent]
        pts = sorted((r["noise"], r["diff"]) for r in mine if r["diff"])
        if pts:
            xs = [n for n, _ in pts]
            ax.errorbar(xs, [d.mean for _, d in pts], yerr=[2 * d.se for _, d in pts],
                        marker="o", capsize=3, label=f"{scorer}@{percent:g}")  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set(xlabel="injected errors (% of candidates)", ylabel="top-1 gain over all@100",
           title="paired gain over all@100 (± 2 SE)")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline_markdown(record: dict) -> str:
    """The headline run: the table, paired differences, oracle share, composition."""
    table = _table(record)
    column = table.primary_columns[0]
    lines = ["| selection | seeds | top-1 | vs all@100 | vs clipscore@same % | oracle share |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for p in paired_rows(table, column):
        row, cell = table.row(p.selection), table.row(p.selection).cell(column)
        share = (
            None if row.scorer in ("oracle", "all") else oracle_share(table, column, p.selection)
        )
        lines.append(
            f"| {p.selection} | {len(row.seeds)} | {cell.format()} "
            f"| {p.vs_all.format() if p.vs_all else '—'} "
            f"| {p.vs_baseline.format() if p.vs_baseline else '—'} "
            f"| {'—' if share is None else f'{share:.2f}'} |"
        )
    plan = record["plan"]
    head = (f"{record['machine']}. {plan['steps']} steps x batch {plan['batch_size']}, lr "
            f"{plan['lr']:g}, model {plan['clip_model']}, seeds {plan['seeds']}, judge "
            f"{plan['judge']} on {plan['judged_fraction']:.0%} of images, injected errors "
            f"{plan['noise_rate']:.0%}. Whole graph: {record['seconds']:.0f} s.")  # fmt: skip
    return "\n".join([head, "", *lines, "", composition_markdown(record["composition"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_options(parser, "the same report, written nowhere")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plots = args.out / "plots" if args.out else Path(tmp) if args.quick else PLOTS
        report(results_file(args), plots)


def report(results: Path | None, plots: Path) -> None:
    """Rewrite the curation sections of `results` (None: nowhere) and the PNGs in `plots`."""
    plots.mkdir(parents=True, exist_ok=True)
    headline = load("rsscn7_noise50_global")
    if headline:
        write_section("curation_headline", "### Headline: `curation` preset on RSSCN7, 50% "
                      "injected errors\n\n" + headline_markdown(headline), results)  # fmt: skip
    rows = sweep_rows([0, 25, 50, 75])
    if rows:
        plot_sweep(rows, 50.0, plots / "curation_accuracy_vs_ratio.png")
        plot_gain(rows, 30.0, plots / "curation_gain_vs_noise.png")
        write_section("curation_sweep", "### Sweep: injected errors x percent kept\n\n"
                      "top-1 mean (paired difference to all@100 at that noise, mean ± SE, "
                      "* beyond 2 SE)\n\n" + sweep_markdown(rows)
                      + "\n\n![accuracy vs ratio](plots/curation_accuracy_vs_ratio.png)\n"
                      "![gain vs noise](plots/curation_gain_vs_noise.png)", results)  # fmt: skip
    base = load("rsscn7_noise50_global_base_synthrs")
    if base:
        write_section("curation_base", "### What a pretrained image tower changes: fine-tuning "
                      "from a SynthRS-trained base (`python -m benchmarks.clip_base`)\n\n"
                      "The same selections as the headline (same scorer versions), fine-tuned "
                      "from `finetune.clip_weights` instead of a random image tower.\n\n"
                      + headline_markdown(base), results)  # fmt: skip
    modes = [(m, load(f"rsscn7_noise50_{m}")) for m in ("global", "per_image", "one_per_image")]
    if any(r for _, r in modes[1:]):
        body = ["### Selection modes at the headline setting", ""]
        for mode, record in modes:
            if record:
                body += [f"**{mode}**", "", headline_markdown(record), ""]
        write_section("curation_modes", "\n".join(body), results)


if __name__ == "__main__":
    main()
