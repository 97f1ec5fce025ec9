"""Score models, measured: quality against ground truth, throughput, and memory.

    .venv/bin/python -m benchmarks.scorers quality      # demo preset, every scorer
    .venv/bin/python -m benchmarks.scorers throughput   # pair_scores vs a plain open_clip loop
    .venv/bin/python -m benchmarks.scorers memory       # peak RSS scoring 10k vs 100k pairs
    .venv/bin/python -m benchmarks.scorers memory --quick [--out DIR]   # any of them, a smoke

Run from the repo root. Results go to benchmarks/RESULTS.md (under --out DIR instead; nowhere
for --quick alone). --quick: the demo sources at 1/10 size and a handful of training steps
(quality), one repeat (throughput), 400 vs 2,000 pairs (memory).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.data_engine import QUICK_SOURCES
from benchmarks.machine import add_output_options, describe, results_file, write_section
from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.layout import captions_dir, pairs_dir, scores_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.pairs.stage import run_pairs
from rs_pipeline.core.scoring.apply import run_pair_scores
from rs_pipeline.core.scoring.stage import run_score_model
from rs_pipeline.core.scoring.versions import versions

TINY_QWEN = {"name": "qwen2vl-reward-tiny", "backend": "qwen2vl_reward", "batch_size": 16,
             "stages": [{"stage": "head", "lr": 1e-3, "steps": 150, "warmup_steps": 10},
                        {"stage": "vision", "lr": 1e-4, "steps": 60, "warmup_steps": 5},
                        {"stage": "text", "lr": 1e-4, "steps": 60, "warmup_steps": 5}]}  # fmt: skip
# --quick: a handful of steps for every trained scorer (fewer than the tiny preset's).
QUICK_STAGES = [{"stage": "head", "lr": 1e-3, "steps": 10, "warmup_steps": 2},
                {"stage": "vision", "lr": 1e-4, "steps": 5},
                {"stage": "text", "lr": 1e-4, "steps": 5}]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


def shrink(spec: dict) -> dict:
    """--quick: the same scorer with a handful of steps (baselines unchanged)."""
    if spec["backend"] in ("random", "oracle"):
        return spec
    return spec | {"warm_start_steps": 5, "eval_every": 10, "stages": QUICK_STAGES}


def demo_engine(work: Path, scorers: list[dict] | None = None, quick: bool = False):
    """Ingest, caption and pair one demo batch; returns (cfg, store, lineage)."""
    overrides = {"preset": "demo", "storage": {"root": str(work / "a"),
                 "lineage_db": str(work / "l.duckdb"), "work_dir": str(work / "w")}}  # fmt: skip
    if quick:
        overrides["sources"] = QUICK_SOURCES
    if scorers:
        overrides["scoring"] = {"scorers": scorers}
    cfg = config_from_dict(overrides)
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    for stage in (run_ingest, run_captions, run_pairs):
        stage(cfg, "bench", store, lineage, "bench")
    return cfg, store, lineage


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    den = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / den if den else 0.0


def quality_row(version, rep, store, val_images: set[str], truth: dict[str, float]):
    scores = store.read_table(scores_dir(version, "bench"), "scores.parquet").to_pylist()
    held = [(s["score"], truth[s["caption_id"]]) for s in scores
            if s["sample_id"] in val_images and s["caption_id"] in truth]  # fmt: skip
    xs, ys = [h[0] for h in held], [h[1] for h in held]
    top = sorted(held, key=lambda h: -h[0])[: max(1, int(0.3 * len(held)))]
    precision = sum(q >= 0.5 for _, q in top) / len(top)
    clip = "n/a" if rep.clipscore_val_accuracy is None else f"{rep.clipscore_val_accuracy:.3f}"
    return (f"| {version} | {rep.val_accuracy:.3f} | {clip} | {spearman(xs, ys):.3f} | "
            f"{precision:.3f} |"), len(held), sum(q >= 0.5 for q in ys) / len(ys)  # fmt: skip


def quality(quick: bool, results: Path | None) -> None:
    specs = [{"name": "clip-head", "backend": "clip_head"},
             {"name": "clipscore", "backend": "clipscore"},
             {"name": "random", "backend": "random"}, TINY_QWEN]  # fmt: skip
    if quick:
        specs = [shrink(s) for s in specs]
    with tempfile.TemporaryDirectory() as tmp:
        cfg, store, lineage = demo_engine(Path(tmp), specs, quick)
        pairs = store.read_table(pairs_dir("bench"), "pairs.parquet").to_pylist()
        val_images = {p["sample_id"] for p in pairs if p["split"] == "val"}
        caps = store.read_table(captions_dir("bench"), "captions.parquet").to_pylist()
        truth = {c["caption_id"]: c["quality"] for c in caps if c["quality"] is not None}
        rows, timings = [], []
        for version in versions(cfg.scoring):
            start = time.perf_counter()
            rep = run_score_model(cfg, version, store, log=lambda _: None)
            timings.append(f"{version}: {time.perf_counter() - start:.0f} s")
            run_pair_scores(cfg, version, "bench", store, lineage, "bench")
            row, n_held, base = quality_row(version, rep, store, val_images, truth)
            rows.append(row)
            print(row, flush=True)
    body = [
        "## Score models (`python -m benchmarks.scorers quality`)", "",
        f"Machine: {describe()}. Demo preset, one batch; {rep.train_pairs} training and "
        f"{rep.val_pairs} held-out pairs (split by image). Spearman and precision use the "
        f"{n_held} candidates of held-out images whose true quality is known; a caption is "
        f"good when its true quality is >= 0.5 (base rate {base:.3f}).", "",
        "| scorer_version | held-out pairwise acc | clipscore acc, same pairs | "
        "Spearman vs true quality | precision of top 30% |",
        "|---|---|---|---|---|", *rows, "",
        f"Time to train/register: {'; '.join(timings)}.",
    ]  # fmt: skip
    write_section("scorers_quality", "\n".join(body), results)


def throughput(quick: bool, results: Path | None) -> None:
    import torch

    from rs_pipeline.core.layout import images_dir
    from rs_pipeline.core.scoring.apply import _texts
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.scoring.infer import PairStream, score_pairs

    with tempfile.TemporaryDirectory() as tmp:
        cfg, store, _ = demo_engine(Path(tmp), quick=quick)
        texts = _texts(store, "bench")
        images_path = store.path(images_dir("bench"), "images.parquet")
        scorer = ClipHeadScorer(seed=0).eval()
        runs = {"pipeline": [], "plain": []}
        for _ in range(1 if quick else 3):
            start, n = time.perf_counter(), 0
            for refs, _ in score_pairs(scorer, PairStream(store.fs, images_path, texts), 64):
                n += len(refs)
            runs["pipeline"].append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            m = plain_loop(scorer, store.fs, images_path, texts)
            runs["plain"].append(m / (time.perf_counter() - start))
            assert n == m
    pipe, plain = statistics.median(runs["pipeline"]), statistics.median(runs["plain"])
    body = [
        "## pair_scores throughput (`python -m benchmarks.scorers throughput`)", "",
        f"Machine: {describe()}, torch threads {torch.get_num_threads()}. {n} pairs of the demo "
        "batch, clip_head scorer (default tiny CLIP), batch 64, median of 3 alternating runs.",
        "Plain loop: decode each image, open_clip preprocess + tokenize, `encode_image` / "
        "`encode_text` on the same model, batch 64, no head, no DataLoader.", "",
        "| path | pairs/s |", "|---|---|",
        f"| plain open_clip encode loop | {plain:,.0f} |",
        f"| `score_pairs` (PairStream + DataLoader + head) | {pipe:,.0f} |",
        f"| overhead ratio (plain / pipeline) | {plain / pipe:.2f}x |",
    ]  # fmt: skip
    write_section("scorers_throughput", "\n".join(body), results)
    print("\n".join(body))


def plain_loop(scorer, fs, images_path: str, texts) -> int:
    """The least any CLIP scoring must do: encode each pair's image and text."""
    import io

    import pyarrow.parquet as pq
    import torch
    from PIL import Image

    n, imgs, txts = 0, [], []
    with fs.open(images_path, "rb") as fh, torch.inference_mode():
        table = pq.read_table(fh, columns=["sample_id", "data"])
        for sid, data in zip(*table.to_pydict().values(), strict=True):
            image = Image.open(io.BytesIO(data)).convert("RGB")
            for t in texts.get(sid, ()):
                imgs.append(image)
                txts.append(t.text)
                if len(imgs) == 64:
                    n += _encode(scorer, imgs, txts)
                    imgs, txts = [], []
        if imgs:
            n += _encode(scorer, imgs, txts)
    return n


def _encode(scorer, imgs, txts) -> int:
    import torch

    pixels = torch.stack([scorer.preprocess(i) for i in imgs])  # (B, 3, H, W)
    scorer.clip.encode_image(pixels)
    scorer.clip.encode_text(scorer.tokenizer(txts))
    return len(imgs)


def memory(quick: bool, results: Path | None) -> None:
    rows = []
    for n_images in (20, 100) if quick else (500, 5000):
        with tempfile.TemporaryDirectory() as tmp:
            run = [sys.executable, "-m", "benchmarks.scorers"]
            subprocess.run([*run, "_memory_write", str(n_images), tmp], check=True, cwd=ROOT)
            out = subprocess.run([*run, "_memory_score", "0", tmp], capture_output=True,
                                 text=True, check=True, cwd=ROOT)  # fmt: skip
        rows.append(out.stdout.strip().splitlines()[-1])
        print(rows[-1], flush=True)
    body = [
        "## pair_scores memory (`python -m benchmarks.scorers memory`)", "",
        f"Machine: {describe()}. A synthetic batch of SynthRS tiles x 20 candidate texts, "
        "scored by `run_pair_scores` with the clip_head scorer (Parquet out, lineage rows in), "
        "in a fresh process. Growth = peak RSS minus the RSS after building the same model.", "",
        "| pairs | seconds | pairs/s | peak RSS MiB | growth while scoring MiB |",
        "|---|---|---|---|---|", *rows,
    ]  # fmt: skip
    write_section("scorers_memory", "\n".join(body), results)


def _memory_config(tmp: str):
    return config_from_dict({"storage": {"root": f"{tmp}/a", "lineage_db": f"{tmp}/l.db"}})


def _memory_write(n_images: int, tmp: str) -> None:
    """A batch of n_images tiles x 20 texts, and a saved clip_head scorer `v`."""
    import pyarrow as pa

    from rs_pipeline.core.records import CAPTION_SCHEMA, IMAGE_SCHEMA
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.sources.synthrs import SCENE_CLASSES, encode_png, render_tile

    store = ArtifactStore(_memory_config(tmp).storage.root)
    images, caps = [], []
    for i in range(n_images):
        img, _ = render_tile(i, SCENE_CLASSES[i % 12])
        sid = f"s{i:06d}"
        images.append({"sample_id": sid, "format": "PNG", "data": encode_png(img)})
        caps += [{"caption_id": f"{sid}-{k}", "batch": "m", "sample_id": sid,
                  "captioner_id": "bench", "text": f"caption {k} of tile {i}",
                  "degradation": None, "status": "ok", "error": None, "quality": None}
                 for k in range(20)]  # fmt: skip
    store.write_table(pa.Table.from_pylist(images, schema=IMAGE_SCHEMA), "rs_images",
                      "batch=m", "images.parquet")  # fmt: skip
    store.write_table(pa.Table.from_pylist(caps, schema=CAPTION_SCHEMA), captions_dir("m"),
                      "captions.parquet")  # fmt: skip
    ClipHeadScorer(seed=0).save(Path(tmp) / "a" / "score_model" / "version=v")


def _memory_score(tmp: str) -> None:
    """Score the batch written by _memory_write; print one Markdown row."""
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    cfg = _memory_config(tmp)
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    ClipHeadScorer(seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    rep = run_pair_scores(cfg, "v", "m", store, lineage, "bench")
    secs = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {rep.pairs:,} | {secs:.0f} | {rep.pairs / secs:,.0f} | {peak:,.0f} | "
          f"{peak - base:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "_memory_write":
        _memory_write(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    if len(sys.argv) > 3 and sys.argv[1] == "_memory_score":
        _memory_score(sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "throughput", "memory"])
    add_output_options(parser, "1/10 of the demo sources, a few steps, 1 repeat, 400-2,000 pairs")
    args = parser.parse_args()
    run = {"quality": quality, "throughput": throughput, "memory": memory}[args.what]
    run(args.quick, results_file(args))
