"""The VLM half on the demo preset: VQA accuracy per selection and best-of-N accuracy vs N.

    python -m benchmarks.vlm                    # runs the whole demo graph (~8 min on 2 cores)
    python -m benchmarks.vlm --report PATH      # reads a report.json written by `make demo`
    python -m benchmarks.vlm --quick            # the tiny preset with a few VLM steps: smoke

Writes the `vlm_demo` section of benchmarks/RESULTS.md from the evaluation report's `vqa` and
`bon` entries: the same numbers the report shows, with the seeds behind each.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.machine import add_output_options, describe, results_file, write_section

QUICK_VLM = {
    "enabled": True,
    "ratios": [30],
    "steps": 4,
    "batch_size": 4,
    "seeds": [0],
    "vqa_count": 3,
    "max_new_tokens": 3,
    "bon": {"n": [1, 2], "max_questions": 4, "clip_scorer": None},
}


def _run(quick: bool) -> tuple[dict, float, str]:
    """Run the graph in a scratch folder; (report.json, seconds, preset) ."""
    import yaml

    import rs_pipeline.launch as launch

    work = Path(tempfile.mkdtemp(prefix="bench_vlm_"))
    os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: nothing lands in the user's
    cfg = {
        "preset": "tiny" if quick else "demo",
        "storage": {
            "root": str(work / "artifacts"),
            "lineage_db": str(work / "lineage.duckdb"),
            "work_dir": str(work / "work"),
        },
    }
    if quick:
        cfg["vlm"] = QUICK_VLM
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    result = launch.run_all(str(path), ["bench"])
    if not result.success:
        raise SystemExit(f"the graph failed; see the Dagster logs above (config {path})")
    report = work / "artifacts" / "evaluation_report" / "report.json"
    return json.loads(report.read_text()), time.perf_counter() - start, cfg["preset"]


def _fmt(cell: dict | None) -> str:
    return "—" if cell is None else f"{cell['mean']:.3f} ± {cell['std']:.3f}"


def vqa_table(doc: dict) -> str:
    """Selections x (benchmark, metric), mean ± std over seeds."""
    rows = doc["vqa"]["table"]["rows"]
    cols = sorted({(c["benchmark"], c["metric"]) for r in rows for c in r["cells"]})
    head = "| selection | seeds | " + " | ".join(f"{b} {m}" for b, m in cols) + " |"
    out = [head, "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = {(c["benchmark"], c["metric"]): c for c in r["cells"]}
        out.append(
            f"| {r['selection']} | {len(r['seeds'])} | "
            + " | ".join(_fmt(cells.get(k)) for k in cols)
            + " |"
        )
    return "\n".join(out)


def bon_table(doc: dict) -> str:
    """Accuracy vs N per strategy, pooled over every selection's checkpoints."""
    table = doc["bon"]["table"]
    ns = table["ns"]
    out = [
        "| benchmark | strategy | checkpoints | " + " | ".join(f"N={n}" for n in ns) + " |",
        "|" + "---|" * (len(ns) + 3),
    ]
    for line in table["lines"]:
        if line["selection"] != "every selection":
            continue
        cells = {c["n"]: c for c in line["cells"]}
        checkpoints = len(line["cells"][0]["values"])
        out.append(
            f"| {line['benchmark']} | {line['strategy']} | {checkpoints} | "
            + " | ".join(_fmt(cells.get(n)) for n in ns)
            + " |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="an existing report.json (skip the run)")
    add_output_options(parser, quick="tiny preset, 4 VLM steps, N in 1, 2")
    args = parser.parse_args()
    if args.report:
        doc, seconds, preset = json.loads(args.report.read_text()), None, "demo"
    else:
        doc, seconds, preset = _run(args.quick)
    if not (doc.get("vqa") and doc.get("bon")):
        raise SystemExit("the report has no VQA or best-of-N rows: is vlm.enabled set?")
    took = f", {seconds / 60:.1f} min end to end" if seconds else ""
    body = "\n\n".join(
        [
            f"## VLM half: VQA and best-of-N (`python -m benchmarks.vlm`, {preset} preset)",
            f"Machine: {describe()}{took}. Tiny Qwen2-VL (random init, full fine-tuning), "
            "evaluated on held-out SynthRS VQA tiles (`synthrs-vqa`) and scene classification "
            "asked as a question on `synthrs-heldout`. Mean ± std over seeds.",
            "### VQA accuracy per selection",
            vqa_table(doc),
            "### Best-of-N accuracy vs N (pooled over every selection's checkpoints)",
            bon_table(doc),
        ]
    )
    print(body)
    write_section("vlm_demo", body, results_file(args))


if __name__ == "__main__":
    main()
