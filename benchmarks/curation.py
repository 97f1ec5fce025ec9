"""The paper's headline comparison, measured: CLIP fine-tuned on each scorer's top-k% selection
against CLIP fine-tuned on everything (`all@100`), over paired seeds.

    .venv/bin/python -m benchmarks.curation demo        # the demo preset (`make demo`), 5 seeds
    .venv/bin/python -m benchmarks.curation rsscn7      # the `curation` preset, headline (~20 min)
    .venv/bin/python -m benchmarks.curation rsscn7 --noise 0 25 50 75 --ratios 10 30 50 70 \
        --tag _sweep                                    # the sweep: hours on 2 cores
    .venv/bin/python -m benchmarks.curation rsscn7 --mode per_image   # selection modes
    .venv/bin/python -m benchmarks.curation demo --quick [--out DIR]  # a smoke, ~1 min
    .venv/bin/python -m benchmarks.curation_report      # tables + plots from the stored JSON

rsscn7: half of RSSCN7 (even positions per class) is the pool, captioned by the real caption
corpus and the template captioner, with `captions.noise.rate` of the candidates replaced by
realistic errors; the other half is the zero-shot benchmark, never tuned on. The configuration
is `preset: curation` plus those paths: what a user runs on their own data. Run from the repo
root. Every run's numbers are kept as JSON under benchmarks/results/curation/ (under
DIR/results/curation/ with --out DIR; nowhere for --quick alone); `benchmarks.curation_report`
rebuilds the RESULTS.md sections and plots from them. --quick: demo runs the tiny preset (the
same graph at test size), rsscn7 a pool of 5 images per class; 2 seeds, a handful of steps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from benchmarks.curation_tables import composition, run_record
from benchmarks.machine import add_output_options, describe
from rs_pipeline.core.config import load_config, preset_dict
from rs_pipeline.core.evaluation.stage import current_results
from rs_pipeline.core.evaluation.summary import summarize
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.launch import run_all

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS_DIR = Path(__file__).with_name("results") / "curation"

# Selection modes compared at the headline setting: the paper's global cut over pairs, each
# caption ranked against its own image's candidates, and one caption per image.
MODES = {
    "global": {},
    "per_image": {"selection": {"score_norm": "per_image"}},
    "one_per_image": {"selection": {"max_per_image": 1}},
}


def quick_overrides() -> dict:
    """--quick on rsscn7: the `curation` preset's scorers and fine-tune with a handful of steps."""
    scorers = []
    for spec in preset_dict("curation")["scoring"]["scorers"]:
        if "warm_start_steps" in spec:
            spec = spec | {"warm_start_steps": 10}
        if "stages" in spec:
            spec = spec | {"stages": [st | {"steps": 10, "warmup_steps": 2}
                                      for st in spec["stages"]]}  # fmt: skip
        scorers.append(spec | ({"eval_every": 10} if spec["backend"] == "clip_head" else {}))
    return {"scoring": {"scorers": scorers},
            "finetune": {"steps": 6, "batch_size": 16, "warmup_steps": 2}}  # fmt: skip


def split_rsscn7(work: Path, per_class: int | None = None) -> tuple[Path, Path]:
    """Symlinked ImageFolders: even positions per class train, odd positions evaluate.

    `per_class` (--quick) keeps only the first that many images of each class.
    """
    train, test = work / "rsscn7_pool", work / "rsscn7_eval"
    for cls in sorted(p for p in (SHARED / "rsscn7").iterdir() if p.is_dir()):
        for i, img in enumerate(sorted(cls.glob("*.jpg"))[:per_class]):
            dest = (train if i % 2 == 0 else test) / cls.name / img.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.symlink_to(img)
    return train, test


def rsscn7_config(work: Path, noise: float, ratios: list[float], seeds: list[int],
                  steps: int | None, mode: str, quick: bool = False) -> dict:  # fmt: skip
    """`preset: curation` plus the user's three paths, as examples/curation.yaml has them."""
    train, test = split_rsscn7(work, 10 if quick else None)
    corpus = sorted(str(p) for p in (SHARED / "rs_captions").glob("*.csv"))
    cfg = {
        "preset": "curation",
        "sources": [{"kind": "imagefolder", "name": "rsscn7", "path": str(train)}],
        "captions": {"retrieval": {"name": "rs_captions", "corpus": corpus},
                     "noise": {"rate": noise / 100.0}},
        "selection": {"ratios": ratios},
        "finetune": {"seeds": seeds},
        "evaluation": {"benchmarks": [{"name": "rsscn7-heldout", "kind": "classification",
                                       "path": str(test)}]},
    }  # fmt: skip
    if quick:
        cfg = _deep_merge(cfg, quick_overrides())
    if steps:
        cfg["finetune"]["steps"] = steps
    for key, value in MODES[mode].items():
        cfg[key] = cfg.get(key, {}) | value
    return cfg


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


def run(overrides: dict, work: Path) -> dict:
    """Run the whole graph through Dagster; the run's record (table, composition, timing)."""
    storage = {"root": str(work / "artifacts"), "lineage_db": str(work / "lineage.duckdb"),
               "work_dir": str(work / "scratch")}  # fmt: skip
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(overrides | {"storage": storage}))
    start = time.perf_counter()
    result = run_all(str(path), ["bench"], dg.DagsterInstance.ephemeral())
    seconds = time.perf_counter() - start
    if not result.success:
        raise SystemExit("the pipeline failed; see the log above")
    cfg = load_config(str(path))
    lineage = LineageStore(cfg.storage.lineage_db)
    table = summarize(current_results(cfg, lineage))
    return run_record(cfg, table, composition(lineage), seconds, describe())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("which", choices=["demo", "rsscn7"])
    parser.add_argument("--noise", type=float, nargs="+", default=[50.0], help="percent")
    parser.add_argument("--ratios", type=float, nargs="+", default=None, help="percents kept")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="default 0 1 2 3 4 (0 1 with --quick)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="fine-tune steps (override)")
    parser.add_argument("--mode", choices=sorted(MODES), default="global")
    parser.add_argument("--tag", default="", help="suffix of the results JSON names")
    parser.add_argument("--set", default="{}", help="JSON merged into the config (probes)")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it")
    add_output_options(parser, "demo: the tiny preset; rsscn7: 5 pool images per class")
    args = parser.parse_args()
    args.seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    results = args.out / "results" / "curation" if args.out else RESULTS_DIR
    if args.quick and not args.out:
        results = None
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
    if args.which == "rsscn7" and not (SHARED / "rsscn7").is_dir():
        raise SystemExit(f"{SHARED / 'rsscn7'} is absent: this benchmark needs it")
    for noise in args.noise if args.which == "rsscn7" else [None]:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.keep) / f"noise{noise}" if args.keep else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            if args.which == "demo":
                preset = "tiny" if args.quick else "demo"
                overrides = {"preset": preset, "finetune": {"seeds": args.seeds}}
                overrides |= MODES[args.mode]
                name = f"demo_{args.mode}"
            else:
                ratios = args.ratios or [30.0]
                overrides = rsscn7_config(work, noise, ratios, args.seeds, args.steps, args.mode,
                                          args.quick)  # fmt: skip
                name = f"rsscn7_noise{noise:g}_{args.mode}"
            overrides = _deep_merge(overrides, json.loads(args.set))
            record = run(overrides, work) | {"name": name, "noise": noise, "mode": args.mode}
        out = results / f"{name}{args.tag}.json" if results else "(quick run: not kept)"
        if results:
            out.write_text(json.dumps(record, indent=1))
        print(f"{name}: {record['seconds']:.0f} s -> {out}")
        print(record["headline_md"])


if __name__ == "__main__":
    main()
