"""GPU throughput and the share of the bf16 compute bound it reaches (`benchmarks/gpu.sh`).

    bash benchmarks/gpu.sh                                  # on a GPU machine, under 8 minutes
    .venv/bin/python -m benchmarks.gpu --quick [--out DIR]  # tiny sizes on any device: a smoke

Measures, on the first CUDA device (or the CPU at tiny sizes, so the script stays correct):
`pair_scores` throughput (`score_pairs` over a Parquet of real JPEGs, decoded and preprocessed
in DataLoader workers, bf16 autocast) for the clip_head scorer on ViT-B/32 and ViT-L/14; CLIP
training steps/s (`train_contrastive` as the fine-tune stage runs it, and the bare GPU step on
ready tensors); a Qwen2-VL-architecture reward forward at the 7B's shapes with random bf16
weights (the 2B's where the GPU has under 40 GiB). Each figure's FLOPs per item are counted by
`torch.utils.flop_counter` on one batch; the fraction of the bound is FLOPs / measured time /
the device's dense bf16 peak (table below; RS_PEAK_BF16_TFLOPS overrides). Without CUDA, or
with --quick, every size is tiny and the fractions are n/a unless RS_PEAK_BF16_TFLOPS is set.
Prints a table; writes gpu.json and a RESULTS.md section under --out DIR (gpu.sh passes $OUT).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.machine import add_output_options, describe, results_file, write_section

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' datasheets; the first
# name that occurs in torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
)
PEAK_ENV = "RS_PEAK_BF16_TFLOPS"
QWEN2VL_7B = {"hidden": 3584, "layers": 28, "heads": 28, "kv_heads": 4, "intermediate": 18944,
              "vision_depth": 32, "vision_embed": 1280, "vision_heads": 16}  # fmt: skip
QWEN2VL_2B = {"hidden": 1536, "layers": 28, "heads": 12, "kv_heads": 2, "intermediate": 8960,
              "vision_depth": 32, "vision_embed": 1280, "vision_heads": 16}  # fmt: skip
QWEN2VL_VOCAB = 151_936  # the released models' embedding rows (the reward head never reads them)


def peak_tflops(device_name: str) -> float | None:
    """The device's dense bf16 peak: $RS_PEAK_BF16_TFLOPS, else the table; None if unknown."""
    if os.environ.get(PEAK_ENV):
        return float(os.environ[PEAK_ENV])
    return next((peak for name, peak in PEAK_BF16_TFLOPS if name in device_name), None)


@dataclass(frozen=True)
class Sizes:
    """Everything a run's size decides."""

    clip_models: tuple[str, ...]
    image_side: int  # JPEG side in pixels
    images: int
    captions_per_image: int
    score_batch: int
    workers: int
    train_model: str
    train_batch: int
    train_steps: int
    qwen: dict | None  # None: the tiny spec
    qwen_side: int
    qwen_batch: int
    qwen_iters: int


def full_sizes() -> Sizes:
    big = torch.cuda.get_device_properties(0).total_memory >= 40 * 2**30
    return Sizes(("ViT-B-32", "ViT-L-14"), 512, 2048, 4, 256, min(8, os.cpu_count() or 1),
                 "ViT-B-32", 256, 20, QWEN2VL_7B if big else QWEN2VL_2B, 448, 16, 5)  # fmt: skip


TINY = Sizes(("rs-vit-tiny-64", "rs-resnet-tiny-64"), 64, 16, 2, 8, 2,
             "rs-vit-tiny-64", 8, 3, None, 56, 2, 2)  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One figure: items per second and, with FLOPs per item, the share of the peak."""

    name: str
    unit: str
    items: int
    seconds: float
    flops_per_item: float
    peak_tflops: float | None

    @property
    def per_s(self) -> float:
        return self.items / self.seconds

    @property
    def tflops(self) -> float:
        return self.per_s * self.flops_per_item / 1e12

    @property
    def fraction(self) -> float | None:
        return None if not self.peak_tflops else self.tflops / self.peak_tflops


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of the matrix products and convolutions `fn` runs (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))


def jpeg_images(n: int, side: int, seed: int = 0) -> list[bytes]:
    """`n` JPEGs (quality 90) of smooth gradients plus noise: content JPEG cannot skip."""
    import numpy as np
    from PIL import Image

    rng, ramp = np.random.default_rng(seed), np.linspace(0, 255, side, dtype=np.float32)
    out = []
    for i in range(n):
        base = (ramp[None, :, None] * (i % 7 + 1) / 7 + ramp[:, None, None] / 2) % 256
        noise = rng.normal(0, 24, (side, side, 3)).astype(np.float32)
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)  # (H, W, 3)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def pair_stream(work: Path, jpegs: list[bytes], k: int):
    """A PairStream over a Parquet of `jpegs` (16 row groups, dealt to workers), k texts each."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rs_pipeline.core.scoring.infer import PairStream, PairText

    ids = [f"s{i:06d}" for i in range(len(jpegs))]
    path = str(work / "images.parquet")
    pq.write_table(pa.table({"sample_id": ids, "data": jpegs}), path,
                   row_group_size=max(len(jpegs) // 16, 1))  # fmt: skip
    texts = {sid: [PairText(f"{sid}-{j}", f"a satellite photo of scene {j} with {i % 9} objects")
                   for j in range(k)] for i, sid in enumerate(ids)}  # fmt: skip
    return PairStream(fsspec.filesystem("file"), path, texts)


def bench_pair_scores(clip: str, sizes: Sizes, device: str, work: Path, peak) -> Record:
    """`score_pairs` over every pair of the stream: JPEG decode + preprocess in workers."""
    from PIL import Image

    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.scoring.infer import score_pairs

    jpegs = jpeg_images(sizes.images, sizes.image_side)
    stream = pair_stream(work, jpegs, sizes.captions_per_image)
    scorer = ClipHeadScorer(clip=clip, seed=0).to(device).eval()

    def one_pass() -> int:
        return sum(len(refs) for refs, _ in score_pairs(scorer, stream, sizes.score_batch,
                                                        sizes.workers, device))  # fmt: skip

    one_pass()  # warm-up: kernels chosen, workers' first fork
    secs = timed(one_pass, device)
    images = [Image.open(io.BytesIO(j)).convert("RGB") for j in jpegs[:2]]
    batch = {k: v.to(device) for k, v in scorer.prepare(images, ["a photo", "a map"]).items()}
    with _autocast(device):  # grad mode: inference mode's fused attention escapes the counter
        flops = count_flops(lambda: scorer(**batch)) / 2
    n = sizes.images * sizes.captions_per_image
    return Record(f"pair_scores clip_head {clip}", "pairs", n, secs, flops, peak)


def _train_pairs(sizes: Sizes):
    from PIL import Image

    jpegs = jpeg_images(max(sizes.train_batch * 2, 16), sizes.image_side, seed=1)
    return [(Image.open(io.BytesIO(j)).convert("RGB"), f"scene {i % 13}")
            for i, j in enumerate(jpegs)]  # fmt: skip


def bench_clip_train(sizes: Sizes, device: str, peak) -> list[Record]:
    """The stage's trainer (preprocessing in its loop) and the bare step on ready tensors."""
    from open_clip.loss import ClipLoss

    from rs_pipeline.core.models.clip import build_clip
    from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive

    pairs = _train_pairs(sizes)
    model, preprocess, _, tokenizer = build_clip(sizes.train_model, 0)
    plan = ContrastivePlan(steps=sizes.train_steps, batch_size=sizes.train_batch, warmup_steps=1)
    train_contrastive(model, preprocess, tokenizer, pairs, ContrastivePlan(steps=2, batch_size=
                      sizes.train_batch), device=device)  # fmt: skip
    secs = timed(lambda: train_contrastive(model, preprocess, tokenizer, pairs, plan,
                                           device=device), device)  # fmt: skip
    model.train()
    images = torch.stack([preprocess(im) for im, _ in pairs[: sizes.train_batch]]).to(device)
    ids = tokenizer([t for _, t in pairs[: sizes.train_batch]]).to(device)  # (B, T)
    opt, loss_fn = torch.optim.AdamW(model.parameters(), lr=1e-5), ClipLoss()

    def step() -> None:
        with _autocast(device):
            img, txt, scale = model(images, ids)[:3]  # (B, D), (B, D), ()
            loss = loss_fn(img.float(), txt.float(), scale.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    flops = count_flops(step)  # forward + backward (the optimizer's elementwise work is free)
    bare = timed(lambda: [step() for _ in range(sizes.train_steps)], device)
    name = f"CLIP train {sizes.train_model} batch {sizes.train_batch}"
    return [Record(f"{name}, `train_contrastive`", "steps", sizes.train_steps, secs, flops, peak),
            Record(f"{name}, bare step on ready tensors", "steps", sizes.train_steps, bare, flops,
                   peak)]  # fmt: skip


def qwen_scorer(sizes: Sizes, device: str):
    """A Qwen2-VL reward scorer: the tiny seeded one, or real shapes with random bf16 weights."""
    from rs_pipeline.core.models.qwen2vl import (
        TinyQwen2VLSpec,
        build_processor,
        default_tokenizer_corpus,
        tiny_qwen2vl_config,
        train_tokenizer,  # fmt: skip
    )
    from rs_pipeline.core.scoring.qwen2vl_reward import Qwen2VLRewardScorer, _backbone

    tokenizer = train_tokenizer(default_tokenizer_corpus())
    pixels = sizes.qwen_side**2
    processor = build_processor(tokenizer, min_pixels=pixels, max_pixels=pixels)
    if sizes.qwen is None:
        config = tiny_qwen2vl_config(TinyQwen2VLSpec(), tokenizer)
        return Qwen2VLRewardScorer(_backbone(config, None, 0), processor).to(device).eval()
    config = tiny_qwen2vl_config(TinyQwen2VLSpec(**sizes.qwen), tokenizer)
    config.text_config.vocab_size = QWEN2VL_VOCAB
    with torch.device(device):
        scorer = Qwen2VLRewardScorer(_backbone(config, torch.bfloat16, None), processor)
    with torch.no_grad():  # random weights at a sane scale: norms 1, the rest N(0, 0.02)
        for name, p in scorer.named_parameters():
            p.fill_(1.0) if "norm" in name else p.normal_(0.0, 0.02)
    return scorer.eval()


def bench_qwen(sizes: Sizes, device: str, peak) -> list[Record]:
    """The reward forward on prepared tensors, and the processor's CPU work per batch."""
    from PIL import Image

    scorer = qwen_scorer(sizes, device)
    images = [Image.open(io.BytesIO(j)).convert("RGB")
              for j in jpeg_images(sizes.qwen_batch, sizes.qwen_side, seed=2)]  # fmt: skip
    texts = [f"a satellite image of a harbour with {i} ships" for i in range(sizes.qwen_batch)]
    prep = timed(lambda: scorer.prepare(images, texts), "cpu")
    batch = {k: v.to(device) for k, v in scorer.prepare(images, texts).items()}

    def forward() -> None:
        with torch.inference_mode(), _autocast(device):
            scorer(**batch)

    forward()
    flops = count_flops(forward) / sizes.qwen_batch
    secs = timed(lambda: [forward() for _ in range(sizes.qwen_iters)], device)
    shape = "tiny" if sizes.qwen is None else f"{sizes.qwen['hidden']}x{sizes.qwen['layers']}"
    name = f"Qwen2-VL reward forward ({shape}, {sizes.qwen_side} px)"
    n = sizes.qwen_batch * sizes.qwen_iters
    return [Record(name, "pairs", n, secs, flops, peak),
            Record("Qwen2-VL processor (CPU, 1 process)", "pairs", sizes.qwen_batch, prep, 0.0,
                   None)]  # fmt: skip


def run(device: str, sizes: Sizes, peak: float | None) -> list[Record]:
    with tempfile.TemporaryDirectory() as tmp:
        records = [bench_pair_scores(c, sizes, device, Path(tmp), peak) for c in sizes.clip_models]
    records += bench_clip_train(sizes, device, peak)
    return records + bench_qwen(sizes, device, peak)


def table(records: list[Record]) -> list[str]:
    rows = ["| figure | items/s | GFLOP per item | achieved TFLOP/s | share of bf16 peak |",
            "|---|---|---|---|---|"]  # fmt: skip
    for r in records:
        share = "n/a" if r.fraction is None else f"{100 * r.fraction:.1f}%"
        rows.append(f"| {r.name} | {r.per_s:,.1f} {r.unit}/s | {r.flops_per_item / 1e9:,.2f} | "
                    f"{r.tflops:,.3f} | {share} |")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_options(parser, "tiny models, 16 images; forced without CUDA")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    sizes = full_sizes() if cuda and not args.quick else TINY
    peak = peak_tflops(name) if cuda or os.environ.get(PEAK_ENV) else None
    start = time.perf_counter()
    records = run(device, sizes, peak)
    wall = time.perf_counter() - start
    body = [
        "## GPU throughput (`bash benchmarks/gpu.sh`)", "",
        f"Device: {name} (bf16 peak {peak or 'unknown'} TFLOP/s); host {describe()}; torch "
        f"{torch.__version__}; {'real' if sizes is not TINY else 'tiny (smoke)'} sizes; "
        f"{wall:.0f} s in all. FLOPs counted by torch's flop counter on one batch.", "",
        *table(records),
    ]  # fmt: skip
    print("\n".join(body))
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    if out is not None:
        raw = {"device": name, "peak_tflops": peak, "sizes": asdict(sizes), "wall_s": wall,
               "records": [asdict(r) | {"per_s": r.per_s, "tflops": r.tflops,
                                        "fraction": r.fraction} for r in records]}  # fmt: skip
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu.json").write_text(json.dumps(raw, indent=2))
    # Tiny sizes reach RESULTS.md only through --out: they are a smoke, never a figure.
    write_section(
        "gpu", "\n".join(body), results_file(args) if sizes is not TINY or args.out else None
    )


if __name__ == "__main__":
    main()
