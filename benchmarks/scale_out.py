"""Scale-out on paper: hours to re-score 10M pairs with a new scorer version on 1, 8 and 32
GPUs, from rates measured here and GPU rates derived from FLOPs, and what binds first.

    .venv/bin/python -m benchmarks.scale_out              # measures here, then the table
    .venv/bin/python -m benchmarks.scale_out --quick [--out DIR]   # small samples: a smoke

Measured on this machine, in this run: JPEG decode + preprocess per CPU core (CLIP at 224 px,
the Qwen2-VL processor at 448 px) and the DuckDB lineage writer's rows/s (`replace_partition`
as `run_pair_scores` calls it, and `replace_partition_from_parquet`). Counted: FLOPs per pair
of the ViT-L/14 clip_head (torch's flop counter on a real forward) and of the 7B Qwen2-VL
reward model (from its parameter counts, built on the meta device; the formula is checked
against the flop counter on the tiny model). Not measured (no GPU here): GPU rates, taken as
the dense bf16 peak x an assumed utilisation (`--utilisation`, default 0.4; `bash
benchmarks/gpu.sh` measures the real share). The deployment is the one in infra/: one
`pair_scores` partition per (scorer_version, batch), launched by Dagster's `k8s_job_executor`,
one GPU per pod, at most the `gpu` pool's limit at once, each pod writing its lineage rows into
the one DuckDB file. Results go to benchmarks/RESULTS.md (under --out DIR instead; nowhere for
--quick alone).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

from benchmarks.gpu import PEAK_BF16_TFLOPS, QWEN2VL_7B, QWEN2VL_VOCAB, count_flops, jpeg_images
from benchmarks.machine import add_output_options, describe, results_file, run_info, write_section

PAIRS = 10_000_000
GPUS = (1, 8, 32)
H100 = dict(PEAK_BF16_TFLOPS)["H100"]


@dataclass(frozen=True)
class Assumptions:
    """What the table assumes beyond what this run measured; each line is printed with it."""

    utilisation: float = 0.4  # share of the bf16 peak a tuned inference step sustains
    cores_per_gpu: int = 12  # decode workers per GPU (e.g. 96 vCPU / 8 GPU nodes, 16 left over)
    captions_per_image: int = 5  # pairs that share one decoded image
    pairs_per_partition: int = 100_000  # one batch partition = one pod
    pod_start_s: float = 90.0  # image pull + scheduling + weights load per pod


def decode_rates(n: int) -> dict[str, float]:
    """Seconds per image on one core: JPEG decode (512 px), CLIP 224 px preprocess, and the
    Qwen2-VL processor at 448 px (resize, normalise, patchify)."""
    from PIL import Image

    from rs_pipeline.core.models.clip import build_clip
    from rs_pipeline.core.models.qwen2vl import (
        build_processor,
        default_tokenizer_corpus,
        train_tokenizer,
    )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _, _, preprocess, _ = build_clip("ViT-L-14", 0)
    processor = build_processor(train_tokenizer(default_tokenizer_corpus()), 448**2, 448**2)
    jpegs = jpeg_images(n, 512)

    def per_image(fn) -> float:
        # CPU seconds, not wall: a per-core rate that other jobs on the machine cannot dilute.
        start = time.process_time()
        for data in jpegs:
            fn(data)
        return (time.process_time() - start) / n

    decode = per_image(lambda d: Image.open(io.BytesIO(d)).convert("RGB"))
    images = [Image.open(io.BytesIO(d)).convert("RGB") for d in jpegs]
    it = iter(images * 2)
    clip = per_image(lambda _: preprocess(next(it)))  # (3, 224, 224)
    it = iter(images * 2)
    qwen = per_image(lambda _: processor.image_processor([next(it)]))
    torch.set_num_threads(threads)
    return {"decode": decode, "clip": clip, "qwen": qwen}


def lineage_rates(rows: int, parts: int) -> dict[str, float]:
    """Rows/s of the lineage writer, on a table already holding parts - 1 partitions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rs_pipeline.core.lineage import LineageStore
    from rs_pipeline.core.records import SCORE_SCHEMA

    out: dict[str, list[float]] = {"replace_partition": [], "replace_partition_from_parquet": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(parts):
            path = f"{tmp}/scores{i}.parquet"
            ids = [f"s{j:08d}" for j in range(rows)]
            pq.write_table(pa.table({"scorer_version": ["v"] * rows, "batch": [f"b{i}"] * rows,
                                     "sample_id": ids, "caption_id": [f"{s}-0" for s in ids],
                                     "score": [j / rows for j in range(rows)]},
                                    schema=SCORE_SCHEMA), path)  # fmt: skip
            for how, store in out.items():
                lineage = LineageStore(f"{tmp}/{how}.duckdb")
                tag = {"asset": "pair_scores", "partition_key": f"b{i}|v", "run_id": "r"}
                start = time.perf_counter()
                if how == "replace_partition":
                    reader = pa.RecordBatchReader.from_batches(
                        SCORE_SCHEMA, pq.ParquetFile(path).iter_batches(batch_size=8192)
                    )
                    lineage.replace_partition("scores", reader, **tag)
                else:
                    lineage.replace_partition_from_parquet("scores", path, **tag)
                store.append(rows / (time.perf_counter() - start))
    return {how: statistics.median(v[1:] or v) for how, v in out.items()}


def clip_flops_per_pair() -> tuple[float, float]:
    """(pair, image tower) FLOPs of the ViT-L/14 clip_head: `score_pairs` encodes the image
    once per pair, so the image share is what caching image embeddings would save."""
    from PIL import Image

    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    scorer = ClipHeadScorer(clip="ViT-L-14", seed=0).eval()
    batch = scorer.prepare([Image.new("RGB", (256, 256))], ["a satellite photo of a harbour"])
    # Grad mode on: under inference mode nn.MultiheadAttention takes a fused path the flop
    # counter does not see (it then undercounts by the attention blocks).
    flops = count_flops(lambda: scorer(**batch))
    image = count_flops(lambda: scorer.clip.encode_image(batch["pixel_values"]))
    return flops, image


def qwen_param_counts(shape: dict) -> tuple[int, int, int]:
    """(vision tower, its patch merger, language model without embeddings) parameters, built on
    the meta device."""
    from rs_pipeline.core.models.qwen2vl import (
        TinyQwen2VLSpec,
        default_tokenizer_corpus,
        tiny_qwen2vl_config,
        train_tokenizer,
    )
    from rs_pipeline.core.scoring.qwen2vl_reward import _backbone

    config = tiny_qwen2vl_config(
        TinyQwen2VLSpec(**shape), train_tokenizer(default_tokenizer_corpus())
    )
    if shape:
        config.text_config.vocab_size = QWEN2VL_VOCAB
    with torch.device("meta"):
        model = _backbone(config, torch.bfloat16, None)
    merger = sum(p.numel() for p in model.visual.merger.parameters())
    vision = sum(p.numel() for p in model.visual.parameters()) - merger
    embed = model.language_model.embed_tokens.weight.numel()
    lm = sum(p.numel() for p in model.language_model.parameters()) - embed
    return vision, merger, lm


def qwen_flops(shape: dict, patches: int, text_tokens: int) -> float:
    """2 x params x tokens per tower, plus attention (QK^T and AV: 4 x layers x T^2 x width)."""
    vision, merger, lm = qwen_param_counts(shape)
    spec = shape or {"hidden": 64, "layers": 2, "vision_depth": 2, "vision_embed": 32}
    merged = patches // 4  # the merger turns each 2x2 patch group into one visual token
    tokens = merged + text_tokens
    return (2 * vision * patches + 2 * merger * merged
            + 4 * spec["vision_depth"] * patches**2 * spec["vision_embed"]
            + 2 * lm * tokens + 4 * spec["layers"] * tokens**2 * spec["hidden"])  # fmt: skip


def check_qwen_formula() -> tuple[float, float]:
    """(formula, counted) FLOPs of one tiny pair at 56 px: the formula's sanity check."""
    from PIL import Image

    from benchmarks.gpu import TINY, qwen_scorer

    scorer = qwen_scorer(TINY, "cpu")
    batch = scorer.prepare([Image.new("RGB", (56, 56))], ["a harbour with ships"])
    with torch.inference_mode():
        counted = count_flops(lambda: scorer(**batch))
    patches = int(batch["image_grid_thw"].prod())
    return qwen_flops({}, patches, int(batch["input_ids"].shape[1]) - patches // 4), counted


def hours(per_gpu: float, gpus: int, lineage: float, a: Assumptions) -> tuple[float, str]:
    """Wall hours for PAIRS on `gpus`, and the binding term when it is not the per-GPU rate:
    pod start-up (more of it than scoring) or the lineage writer (its serial inserts)."""
    partitions = PAIRS / a.pairs_per_partition
    scoring = PAIRS / (per_gpu * gpus)
    startup = partitions / gpus * a.pod_start_s
    writer = PAIRS / lineage  # one DuckDB file: every pod's insert queues on its lock
    total = max(scoring + startup, writer)
    if writer > scoring + startup:
        return total / 3600, "lineage writer"
    return total / 3600, ("pod start-up" if startup > scoring else "")


def scenario(name: str, gpu_rate: float, decode: float, lineage: float, a: Assumptions) -> list:
    per_gpu = min(gpu_rate, decode)
    rows = []
    for gpus in GPUS:
        h, writer = hours(per_gpu, gpus, lineage, a)
        binds = writer or ("decode (CPU)" if decode < gpu_rate else "GPU")
        rows.append(f"| {name} | {gpus} | {gpu_rate:,.0f} | {decode:,.0f} | {h:,.2f} | {binds} |")
    return rows


def pairs_per_s_per_core(rates: dict[str, float], prep: str, a: Assumptions) -> float:
    """Pairs/s one core prepares: the image decoded once, preprocessed once per pair (as
    `PairStream` + the scorer's `prepare` in the DataLoader's collate do now)."""
    return 1.0 / (rates["decode"] / a.captions_per_image + rates[prep])


def measure(quick: bool) -> dict:
    a = Assumptions()
    rates = decode_rates(8 if quick else 64)
    print(f"decode/preprocess s per image: {rates}", flush=True)
    lineage = lineage_rates(*((5_000, 2) if quick else (200_000, 4)))
    print(f"lineage rows/s: {lineage}", flush=True)
    clip_pair, clip_image = clip_flops_per_pair()
    formula, counted = check_qwen_formula()
    patches = (448 // 14) ** 2
    qwen = qwen_flops(QWEN2VL_7B, patches, 48)
    return {"a": a, "rates": rates, "lineage": lineage, "clip": (clip_pair, clip_image),
            "qwen": qwen, "check": (formula, counted), "patches": patches}  # fmt: skip


def body(m: dict, utilisation: float) -> str:
    a, rates, lineage = m["a"], m["rates"], m["lineage"]
    sustained = H100 * 1e12 * utilisation
    clip_pair, clip_image = m["clip"]
    writer = lineage["replace_partition"]
    decode = {k: a.cores_per_gpu * pairs_per_s_per_core(rates, k, a) for k in ("clip", "qwen")}
    rows = [
        *scenario("ViT-L/14 clip_head", sustained / clip_pair, decode["clip"], writer, a),
        *scenario("Qwen2-VL 7B reward", sustained / m["qwen"], decode["qwen"], writer, a),
    ]
    formula, counted = m["check"]
    text = [
        "## Scale-out on paper: re-scoring 10M pairs (`python -m benchmarks.scale_out`)", "",
        f"Machine: {describe()}; {run_info()}. One pass, on a machine shared with other jobs.",
        "", "**Measured here, this run:**", "",
        f"- JPEG decode (512 px): {1 / rates['decode']:,.0f} images/s per core; CLIP 224 px "
        f"preprocess {1 / rates['clip']:,.0f}/s; Qwen2-VL processor at 448 px "
        f"{1 / rates['qwen']:,.0f}/s (one core each, torch 1 thread).",
        f"- DuckDB lineage writer, `scores` rows into a table already holding other "
        f"partitions: `replace_partition` (an Arrow stream, what `run_pair_scores` calls) "
        f"{lineage['replace_partition']:,.0f} rows/s; `replace_partition_from_parquet` "
        f"{lineage['replace_partition_from_parquet']:,.0f} rows/s.",
        f"- FLOPs per pair, ViT-L/14 clip_head: {clip_pair / 1e9:,.1f} GFLOP, of which the "
        f"image tower {clip_image / 1e9:,.1f} (torch flop counter, real forward).",
        f"- FLOPs per pair, Qwen2-VL 7B reward at 448 px ({m['patches']} patches -> "
        f"{m['patches'] // 4} visual tokens + 48 text tokens): {m['qwen'] / 1e12:,.2f} TFLOP "
        f"(2 x parameters x tokens + attention, parameters counted on the meta device; the "
        f"same formula gives {formula / 1e6:,.2f} MFLOP for the tiny model, whose forward "
        f"the flop counter puts at {counted / 1e6:,.2f}).", "",
        f"**Assumed, not measured (no GPU here):** H100 SXM dense bf16 peak {H100:.0f} TFLOP/s "
        f"x {utilisation:.0%} utilisation = {sustained / 1e12:,.0f} TFLOP/s per GPU; "
        f"{a.cores_per_gpu} decode cores per GPU (DataLoader workers); {a.captions_per_image} "
        f"captions per image; {a.pairs_per_partition:,} pairs per partition (one pod each, "
        f"{a.pod_start_s:.0f} s to start and load weights); the lineage writer is the single "
        "DuckDB file, so every pod's insert waits for the one before it.", "",
        "| scorer | GPUs | GPU-bound pairs/s per GPU | decode-bound pairs/s per GPU | hours | "
        "binds first |", "|---|---|---|---|---|---|", *rows, "",
    ]  # fmt: skip
    return "\n".join(text + design(writer, rows))


def design(writer: float, rows: list[str]) -> list[str]:
    binds = any("lineage writer" in r for r in rows)
    lead = ("By rate, the single DuckDB lineage writer binds first at scale" if binds else
            "By rate, the single DuckDB lineage writer does not bind")  # fmt: skip
    return [
        f"{lead}: {PAIRS:,} rows at {writer:,.0f} rows/s is {PAIRS / writer / 3600:.2f} h of "
        "serialised inserts. It binds by construction instead: DuckDB takes one writer per "
        "file (`LineageStore` queues connections on a file lock beside it) and wants a local "
        "disk, so `k8s_job_executor` pods on other nodes reach it only through a shared "
        "volume (infra/README.md), where a file lock is only as good as the volume's locking "
        "and every pod's insert and its wait for the lock hold a GPU.",
        "Design: every `pair_scores` pod already writes `scores.parquet` for its partition; "
        "it stops writing lineage and leaves that file as its fragment. One writer (a "
        "`lineage_merge` step after the backfill, or a sensor on new fragments) loads them "
        "with `replace_partition_from_parquet` (DuckDB reads Parquet itself, "
        "delete-then-insert per partition, idempotent), the one place that opens the file. "
        "In production, lineage in PostgreSQL instead: each pod `COPY`s its rows in its own "
        "transaction (concurrent writers; delete-then-insert per partition key), and the "
        "lineage CLI queries it over the same SQL.",
        "Beyond the writer: the clip_head figure re-encodes each image once per caption; "
        "caching image embeddings per batch (one image pass per image) would cut its GPU "
        "work by the image share above x (1 - 1/captions per image). The 7B is GPU-bound "
        "everywhere: hours scale as 1/GPUs until the writer's floor.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utilisation", type=float, default=0.4,
                        help="assumed share of the bf16 peak (default 0.4)")  # fmt: skip
    add_output_options(parser, "8 images, 5,000 lineage rows")
    args = parser.parse_args()
    text = body(measure(args.quick), args.utilisation)
    write_section("scale_out", text, results_file(args))
    print(text)


if __name__ == "__main__":
    main()
