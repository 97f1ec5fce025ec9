"""Score models, measured: quality against ground truth, throughput, and memory.

    .venv/bin/python -m benchmarks.scorers quality      # demo preset, every scorer
    .venv/bin/python -m benchmarks.scorers throughput   # pair_scores vs a plain open_clip loop
    .venv/bin/python -m benchmarks.scorers memory       # peak RSS scoring 10k, 100k, 1M pairs
    .venv/bin/python -m benchmarks.scorers memory --quick [--out DIR]   # any of them, a smoke

Run from the repo root. Results go to benchmarks/RESULTS.md (under --out DIR instead; nowhere
for --quick alone). --quick: the demo sources at 1/10 size and a handful of training steps
(quality), one repeat (throughput), 1,000 and 4,000 pairs (memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.data_engine import QUICK_SOURCES
from benchmarks.machine import add_output_options, describe, results_file, write_section
from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
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


def _pair_texts(store, batch: str) -> dict:
    """sample_id -> its ok candidates, held in a dict: what the plain loop iterates."""
    from rs_pipeline.core.scoring.apply import text_batches
    from rs_pipeline.core.scoring.infer import PairText

    texts: dict = {}
    for rb in text_batches(store, batch)():
        for sid, cid, text in zip(*(rb.column(c).to_pylist() for c in COLS), strict=True):
            texts.setdefault(sid, []).append(PairText(cid, text))
    return texts


COLS = ("sample_id", "caption_id", "text")


def _save_throughput_scorers(root: Path) -> list[str]:
    """clip_head and clipscore on the same (default tiny) CLIP, saved as score_model versions."""
    from rs_pipeline.core.config import ScorerSpec
    from rs_pipeline.core.scoring.backends import save_scorer
    from rs_pipeline.core.scoring.baselines import ClipScoreScorer
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    head = ClipHeadScorer(seed=0)
    for name, scorer in (("clip_head", head), ("clipscore", ClipScoreScorer.from_clip_head(head))):
        spec = ScorerSpec(name=name.replace("_", "-"), backend=name)
        save_scorer(scorer, spec, root / "score_model" / f"version={name}")
    return ["clip_head", "clipscore"]


def throughput(quick: bool, results: Path | None) -> None:
    import torch

    from rs_pipeline.core.scoring.apply import images_path, stored_scorer

    # One intra-op thread for both sides: on a shared 2-core machine a second one spins on
    # barriers and the figures measure the neighbours (seen: 47 vs 173 pairs/s, same model).
    torch.set_num_threads(1)
    repeats = 1 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        cfg, store, lineage = demo_engine(Path(tmp), quick=quick)
        texts = _pair_texts(store, "bench")
        path = images_path(store, "bench")
        names = _save_throughput_scorers(Path(tmp) / "a")
        runs = {(name, kind): [] for name in names for kind in ("plain", "pipeline")}
        for _ in range(repeats):  # A/B alternate, each scorer in turn
            for name in names:
                scorer = stored_scorer(store, name)
                model = scorer.clip if name == "clip_head" else scorer.model
                start = time.perf_counter()
                m = plain_loop(model, scorer.preprocess, scorer.tokenizer, store.fs, path, texts)
                runs[name, "plain"].append(m / (time.perf_counter() - start))
                start = time.perf_counter()
                n = run_pair_scores(cfg, name, "bench", store, lineage, "bench").pairs
                runs[name, "pipeline"].append(n / (time.perf_counter() - start))
                assert n == m, f"{name}: the stage scored {n} pairs, the plain loop {m}"
    rows = []
    for name in names:
        plain, pipe = (statistics.median(runs[name, k]) for k in ("plain", "pipeline"))
        rows.append(f"| {name} | {plain:,.0f} | {pipe:,.0f} | {plain / pipe:.2f}x |")
    body = [
        "## pair_scores throughput (`python -m benchmarks.scorers throughput`)", "",
        f"Machine: {describe()}, torch threads {torch.get_num_threads()} (both sides); shared "
        "with other jobs while it ran, so absolute rates are low and only the ratio counts. "
        f"{n:,} pairs of the demo batch, the default tiny CLIP "
        f"(`rs-resnet-tiny-64`), batch 64; median of {repeats} alternating runs per scorer.",
        "Plain loop: decode each image, open_clip preprocess + tokenize, `encode_image` / "
        "`encode_text` on the same model, batch 64, no head, no DataLoader, nothing written. "
        "Pipeline: the whole `run_pair_scores` stage (load the stored scorer, spill the texts "
        "in image order, PairStream + DataLoader, the head or the cosine, scores.parquet, "
        "lineage rows).", "",
        "| scorer | plain open_clip encode pairs/s | `run_pair_scores` pairs/s | "
        "pipeline time / plain |", "|---|---|---|---|", *rows,
    ]  # fmt: skip
    write_section("scorers_throughput", "\n".join(body), results)
    print("\n".join(body))


def plain_loop(model, preprocess, tokenizer, fs, images_path: str, texts) -> int:
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
                    n += _encode(model, preprocess, tokenizer, imgs, txts)
                    imgs, txts = [], []
        if imgs:
            n += _encode(model, preprocess, tokenizer, imgs, txts)
    return n


def _encode(model, preprocess, tokenizer, imgs, txts) -> int:
    import torch

    pixels = torch.stack([preprocess(i) for i in imgs])  # (B, 3, H, W)
    model.encode_image(pixels)
    model.encode_text(tokenizer(txts))
    return len(imgs)


# The memory benchmark's scorer: clip_head on a micro ViT, so a million pairs score in minutes
# on 2 cores through the very code path of the default scorer (only the towers are smaller).
MICRO_CLIP = "bench-vit-micro-32"
MICRO_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
MEMORY_IMAGES = 500  # the fixed image set; texts per image grow with the size


def memory(quick: bool, results: Path | None) -> None:
    sizes = (1_000, 4_000) if quick else (10_000, 100_000, 1_000_000)
    n_images = 50 if quick else MEMORY_IMAGES
    rows, first = [], None
    for pairs in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            run = [sys.executable, "-m", "benchmarks.scorers"]
            args = ["_memory_write", str(n_images), str(pairs // n_images), tmp]
            subprocess.run([*run, *args], check=True, cwd=ROOT)
            out = subprocess.run([*run, "_memory_score", "0", tmp], capture_output=True,
                                 text=True, check=True, cwd=ROOT)  # fmt: skip
        n, secs, peak, growth = json.loads(out.stdout.strip().splitlines()[-1])
        first = first or (peak, secs / n)
        rel, vs = secs / n / first[1], 100 * (peak / first[0] - 1)
        rows.append(f"| {n:,} | {secs:.0f} | {n / secs:,.0f} | {rel:.2f} | {peak:,.0f} | "
                    f"{vs:+.1f}% | {growth:,.0f} |")  # fmt: skip
        print(rows[-1], flush=True)
    body = [
        "## pair_scores memory (`python -m benchmarks.scorers memory`)", "",
        f"Machine: {describe()}; shared with other jobs while it ran. A synthetic batch: a fixed "
        f"set of {n_images} SynthRS tiles (32 px PNG), pairs/{n_images} candidate texts each, "
        "written text-major (every image's k-th text, then the next k, as the captions stage "
        "interleaves captioners), scored by `run_pair_scores` (scores.parquet out, lineage rows "
        "in), each size in a fresh process. The scorer is clip_head on a micro ViT "
        f"(`{MICRO_CLIP}`: 1 layer, width 32, 32 px), the same code path as the default "
        "scorer, so that a million pairs run in minutes on 2 cores; memory beyond the model "
        "does not depend on its size. Growth = peak RSS minus the RSS after building the same "
        "model; time per pair is relative to the smallest size (1.00 = linear). One torch "
        "thread (the micro ops are too small to split).", "",
        "| pairs | seconds | pairs/s | time per pair (rel.) | peak RSS MiB | peak vs smallest | "
        "growth while scoring MiB |", "|---|---|---|---|---|---|---|", *rows,
    ]  # fmt: skip
    write_section("scorers_memory", "\n".join(body), results)


def _memory_config(tmp: str):
    from rs_pipeline.core.models.clip import register_clip_config

    register_clip_config(MICRO_CLIP, MICRO_CONFIG)
    return config_from_dict({"storage": {"root": f"{tmp}/a", "lineage_db": f"{tmp}/l.db",
                                         "work_dir": f"{tmp}/w"}})  # fmt: skip


def _memory_write(n_images: int, per_image: int, tmp: str) -> None:
    """A batch of n_images tiles x per_image texts (text-major), and a clip_head scorer `v`."""
    import hashlib

    import pyarrow as pa
    from PIL import Image

    from rs_pipeline.core.records import CAPTION_SCHEMA, IMAGE_SCHEMA, SAMPLE_SCHEMA
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.sources.synthrs import SCENE_CLASSES, encode_png, render_tile

    store = ArtifactStore(_memory_config(tmp).storage.root)
    sids = [hashlib.sha256(f"tile {i}".encode()).hexdigest() for i in range(n_images)]
    images = []
    for i, sid in enumerate(sids):
        img = render_tile(i, SCENE_CLASSES[i % 12])[0].resize((32, 32), Image.Resampling.BILINEAR)
        images.append({"sample_id": sid, "format": "PNG", "data": encode_png(img)})
    store.write_table(pa.Table.from_pylist(images, schema=IMAGE_SCHEMA), "rs_images",
                      "batch=m", "images.parquet")  # fmt: skip
    # Scoring reads only the images; an (empty) samples table is ingest's "published" marker.
    store.write_table(SAMPLE_SCHEMA.empty_table(), "rs_images", "batch=m", "samples.parquet")
    writer = TableWriter(store, CAPTION_SCHEMA, captions_dir("m"), "captions.parquet", chunk=8192)
    for k in range(per_image):
        for i, sid in enumerate(sids):
            row = {"caption_id": f"{sid[:16]}-{k}", "batch": "m", "sample_id": sid,
                   "captioner_id": "bench", "text": f"caption {k} of tile {i}",
                   "degradation": None, "status": "ok", "error": None, "quality": None}  # fmt: skip
            writer.write(row)
    writer.close()
    ClipHeadScorer(clip=MICRO_CLIP, seed=0).save(Path(tmp) / "a" / "score_model" / "version=v")


def _memory_score(tmp: str) -> None:
    """Score the batch written by _memory_write; print [pairs, seconds, peak, growth] as JSON."""
    import torch

    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    # The micro towers' ops are too small to split: on a shared machine a second intra-op
    # thread spins on barriers (measured: 245 vs 15,850 pairs/s for the forward alone).
    torch.set_num_threads(1)

    cfg = _memory_config(tmp)
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    ClipHeadScorer(clip=MICRO_CLIP, seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    rep = run_pair_scores(cfg, "v", "m", store, lineage, "bench")
    secs = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps([rep.pairs, secs, peak, peak - base]))


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[1] == "_memory_write":
        _memory_write(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    if len(sys.argv) > 3 and sys.argv[1] == "_memory_score":
        _memory_score(sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "throughput", "memory"])
    add_output_options(parser, "1/10 of the demo sources, a few steps, 1 repeat, 1,000-4,000 pairs")
    args = parser.parse_args()
    run = {"quality": quality, "throughput": throughput, "memory": memory}[args.what]
    run(args.quick, results_file(args))
