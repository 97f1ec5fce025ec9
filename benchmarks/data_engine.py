"""The ScoreRS data engine, measured: candidates, degradations, pairs and judge agreement.

    .venv/bin/python -m benchmarks.data_engine              # from the repo root
    .venv/bin/python -m benchmarks.data_engine --quick [--out DIR]   # (a) at 1/10 size

(a) SynthRS on the demo preset: candidates per captioner and per degradation type, pairs by
kind, and each non-oracle judge's pairwise agreement with the ground-truth oracle.
(b) The real RSSCN7 images with the real caption corpus (../shared/data): candidates per class
and the label-consistency judge's pair counts. Results go to benchmarks/RESULTS.md (under
--out DIR instead; nowhere for --quick alone). --quick shrinks (a)'s sources tenfold; (b)
takes seconds as it is.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.machine import add_output_options, describe, results_file, write_section
from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.layout import captions_dir, pairs_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.pairs.stage import run_pairs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# --quick: the demo preset's sources at a tenth of their size.
QUICK_SOURCES = [
    {"kind": "synthrs", "name": "synthrs", "count": 60, "size": 64, "seed": 0},
    {"kind": "sentinel2", "name": "sentinel2", "chip_size": 64, "max_chips": 20},
]


def run_all(overrides: dict, work: Path):
    """Ingest, caption and pair one batch; returns (config, store, reports, seconds)."""
    cfg = config_from_dict(
        overrides
        | {"storage": {"root": str(work / "artifacts"), "lineage_db": str(work / "l.duckdb")}}
    )
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    start = time.perf_counter()
    ingest = run_ingest(cfg, "bench", store, lineage, "bench")
    captions = run_captions(cfg, "bench", store, lineage, "bench")
    pairs = run_pairs(cfg, "bench", store, lineage, "bench")
    return store, (ingest, captions, pairs), time.perf_counter() - start


def table(header: tuple[str, ...], rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]


def faithful_wins(store) -> list[tuple[str, str]]:
    """Per degradation kind: how often the oracle scores the faithful caption higher."""
    rows = store.read_table(captions_dir("bench"), "captions.parquet").to_pylist()
    faithful = {
        r["sample_id"]: r["quality"] for r in rows if r["captioner_id"].endswith("faithful")
    }
    wins, total = Counter(), Counter()
    for r in rows:
        if r["degradation"]:
            kind = r["degradation"].split(":")[0]
            total[kind] += 1
            wins[kind] += faithful[r["sample_id"]] > r["quality"]
    out = [(k, f"{wins[k]}/{total[k]} ({wins[k] / total[k]:.1%})") for k in sorted(total)]
    return out + [("all", f"{sum(wins.values())}/{sum(total.values())}")]


def synthrs_section(work: Path, quick: bool = False) -> list[str]:
    overrides = {"preset": "demo"} | ({"sources": QUICK_SOURCES} if quick else {})
    store, (ing, cap, pairs), secs = run_all(overrides, work)
    agreement = [(k, "n/a" if v is None else f"{v:.3f}") for k, v in
                 pairs.agreement_with_oracle.items()]  # fmt: skip
    return [
        f"### (a) SynthRS, demo preset ({ing.counts.unique} images, {secs:.0f} s end to end)",
        "",
        *table(
            ("captioner", "candidates", "mean true quality"),
            [
                (k, v, cap.mean_quality_by_captioner.get(k, "n/a"))
                for k, v in cap.by_captioner.items()
            ],
        ),  # fmt: skip
        "",
        *table(("degradation", "candidates"), sorted(cap.by_degradation.items())),
        "",
        "Oracle check: the faithful caption of an image scores above its degraded variants.",
        "A self-consistency check (degraders and oracle share one vocabulary), not evidence",
        "that the oracle reads free-form captions perfectly.",
        "",
        *table(("degradation", "faithful scored higher"), faithful_wins(store)),
        "",
        *table(("pair kind", "pairs"), sorted(pairs.by_kind.items())),
        "",
        *table(("judge", "pairwise agreement with oracle"), agreement),
        "",
        "Label consistency sees only the class: it separates wrong-class, generic and",
        "garbled captions from faithful ones, but not wrong counts, colours or positions",
        "(those tie or fall to caption length), hence its partial agreement. The VLM-as-judge",
        "needs an OpenAI-compatible VLM server, which these offline machines do not have: its",
        "agreement is not measured here (its client and parser are tested against a local",
        "protocol server).",
        "",
        f"VQA: {dict(sorted(pairs.vqa.items()))}. Skipped: {dict(sorted(pairs.skipped.items()))}.",
        f"Split: {dict(sorted(pairs.by_split.items()))}; images in both splits: "
        f"{pairs.samples_in_both_splits}.",
    ]


def rsscn7_section(work: Path) -> list[str]:
    if not (SHARED / "rsscn7").is_dir():
        return [f"### (b) RSSCN7: skipped, {SHARED / 'rsscn7'} is absent."]
    corpus = sorted(str(p) for p in (SHARED / "rs_captions").glob("*.csv"))
    overrides = {
        "sources": [{"kind": "imagefolder", "name": "rsscn7", "path": str(SHARED / "rsscn7")}],
        "captions": {
            "retrieval": {"enabled": True, "name": "rs_captions", "corpus": corpus, "per_image": 3}
        },
    }
    store, (ing, cap, pairs), secs = run_all(overrides, work)
    labels = {r["sample_id"]: r["label"] for r in
              store.read_table("rs_images/batch=bench/samples.parquet").to_pylist()}  # fmt: skip
    caps = store.read_table(captions_dir("bench"), "captions.parquet").to_pylist()
    per_class = Counter((labels[c["sample_id"]], c["captioner_id"]) for c in caps)
    prs = store.read_table(pairs_dir("bench"), "pairs.parquet").to_pylist()
    pair_class = Counter(labels[p["sample_id"]] for p in prs if p["kind"] == "caption")
    captioners = sorted({k for _, k in per_class})
    rows = [(c, *[per_class[(c, k)] for k in captioners], pair_class[c])
            for c in sorted(set(labels.values()))]  # fmt: skip
    return [
        f"### (b) RSSCN7 ({ing.counts.unique} real images) + real caption corpus "
        f"({secs:.0f} s end to end)",
        "",
        *table(("class", *captioners, "label-consistency pairs"), rows),
        "",
        f"Pairs by judge: {dict(pairs.by_judge)}; skipped: {dict(sorted(pairs.skipped.items()))}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_options(parser, "the demo preset's sources at 1/10 size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = synthrs_section(Path(tmp) / "a", args.quick) + [""]
        lines += rsscn7_section(Path(tmp) / "b")
    body = "\n".join(
        [
            "## Data engine (`python -m benchmarks.data_engine`)",
            "",
            f"Machine: {describe()}.",
            "",
            *lines,
        ]
    )
    write_section("data_engine", body, results_file(args))
    print(body)


if __name__ == "__main__":
    main()
