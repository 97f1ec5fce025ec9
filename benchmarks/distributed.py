"""Step time of each trainer at 1 and 2 CPU processes (torchrun, gloo), and the 8-GPU plan
for the 7B scorer derived from it.

    python -m benchmarks.distributed [--quick] [--out DIR]

Each run is `torchrun --standalone --nproc_per_node N -m rs_pipeline.jobs.train` over a probe
job (rs_pipeline/jobs/probe.py: the real trainer loops on tiny models, the same global batch
and seed at both sizes), one thread per process. A step's cost is the difference between a
long and a short run's training time over the extra steps, so process start, model build, the
first (warm-up) step and the score trainer's evaluations cancel; runs alternate 1 and 2
processes and the figure is the median of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.machine import add_output_options, describe, results_file, write_section
from rs_pipeline.defs.training import local_command
from rs_pipeline.jobs.probe import RESULT
from rs_pipeline.jobs.spec import ProbeSpec, TrainJob

TRAINERS = ("score", "clip", "sft")

# The 8-GPU plan: Qwen2-VL-7B as the scorer (the paper's ScoreRS base), ZeRO-2 on 8 GPUs.
PARAMS = 8.29e9  # Qwen2-VL-7B-Instruct: 7.6B language model + 0.68B vision tower
GPUS = 8
SEQ_TOKENS = 256 + 96  # a 448 px tile: (448/14)^2 / 4 = 256 merged visual tokens, + text
PAIRS_PER_STEP = 64  # global batch: 64 pairs = 128 sequences (chosen and rejected)
PEAK_TFLOPS = 989.0  # H100 SXM dense bf16
MFU = 0.35  # assumed model-FLOPs utilisation for a 7B VLM at this sequence length
NVLINK_GBPS = 450.0  # assumed achieved per-GPU collective bandwidth (of 900 GB/s NVLink 4)


def _run(trainer: str, nproc: int, steps: int, batch: int) -> float:
    """Training seconds of one torchrun probe of `steps` (per stage for the score trainer)."""
    with tempfile.TemporaryDirectory(prefix="rs-bench-dist-") as tmp:
        spec = ProbeSpec(trainer=trainer, out=tmp, steps=steps, batch_size=batch)
        job = Path(tmp) / "job.json"
        job.write_text(TrainJob(kind="probe", probe=spec).to_json())
        env = os.environ | {"OMP_NUM_THREADS": "1"}  # scaling with processes, not threads
        subprocess.run(local_command(nproc, str(job)), check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        return json.loads((Path(tmp) / RESULT).read_text())["train_seconds"]


def measure(steps: tuple[int, int], batch: int, repeats: int) -> dict[str, dict[int, float]]:
    """Median seconds per step by trainer and process count (1/2 alternating)."""
    short, long = steps
    times: dict[str, dict[int, list[float]]] = {t: {1: [], 2: []} for t in TRAINERS}
    for _ in range(repeats):
        for trainer in TRAINERS:
            extra = (long - short) * (2 if trainer == "score" else 1)  # score: 2 stages
            for nproc in (1, 2):
                cost = _run(trainer, nproc, long, batch) - _run(trainer, nproc, short, batch)
                times[trainer][nproc].append(cost / extra)
    return {t: {n: statistics.median(v) for n, v in by.items()} for t, by in times.items()}


def plan_7b(times: dict[str, dict[int, float]]) -> list[str]:
    """Memory per GPU, tokens and estimated step time of the 7B scorer on 8 GPUs."""
    gib = 2**30
    ddp = 16 * PARAMS  # bf16 weights + bf16 grads + fp32 master, Adam m and v
    zero2 = 2 * PARAMS + 14 * PARAMS / GPUS  # grads and optimizer states sharded
    fsdp = 16 * PARAMS / GPUS  # everything sharded (ZeRO-3 / FSDP FULL_SHARD)
    tokens = 2 * PAIRS_PER_STEP * SEQ_TOKENS
    flops = 6 * PARAMS * tokens  # forward + backward, all weights training (stage 3)
    compute_s = flops / (GPUS * PEAK_TFLOPS * 1e12 * MFU)
    comm_s = 2 * (2 * PARAMS) * (GPUS - 1) / GPUS / (NVLINK_GBPS * 1e9)  # RS grads + AG params
    return [
        f"Scorer: Qwen2-VL-7B, {PARAMS / 1e9:.2f}B parameters, bf16 weights and gradients with "
        f"fp32 AdamW states (16 bytes/parameter), {GPUS} GPUs.",
        "",
        "| layout | model states per GPU | fits 80 GB? |",
        "|---|---|---|",
        f"| DDP (replicated) | {ddp / gib:.0f} GiB | no |",
        f"| ZeRO-2 (grads + optimizer sharded), the paper's | {zero2 / gib:.0f} GiB | yes, "
        f"{80 - zero2 / 1e9:.0f} GB left for activations |",
        f"| FSDP full shard (ZeRO-3) | {fsdp / gib:.0f} GiB | yes |",
        "",
        f"Tokens per step: {PAIRS_PER_STEP} pairs x 2 sequences x {SEQ_TOKENS} tokens "
        f"= {tokens:,} (global batch fixed in the config; {tokens // GPUS:,} per GPU).",
        f"Compute: 6 x params x tokens = {flops / 1e15:.1f} PFLOP per step; at {MFU:.0%} MFU of "
        f"{PEAK_TFLOPS:.0f} TFLOPS (H100 bf16) x {GPUS}: {compute_s:.2f} s.",
        f"ZeRO-2 traffic: reduce-scatter of bf16 gradients + all-gather of bf16 weights, "
        f"{2 * 2 * PARAMS * (GPUS - 1) / GPUS / 1e9:.0f} GB per GPU per step at an assumed "
        f"{NVLINK_GBPS:.0f} GB/s: {comm_s:.2f} s, mostly overlapped with backward.",
        f"Estimated step: {compute_s:.2f}-{compute_s + comm_s:.2f} s (overlapped to serial), "
        f"so 1,000 steps in {compute_s * 1000 / 60:.0f}-{(compute_s + comm_s) * 1000 / 60:.0f} "
        f"min. With {tokens // GPUS:,} tokens per GPU, turn on activation checkpointing if "
        "activations outgrow the ZeRO-2 headroom above (FSDP full shard if they still do).",
        f"What the CPU measurement above says for it: at 2 processes the score trainer runs "
        f"at {times['score'][1] / times['score'][2]:.2f}x one process's step rate (ideal 2x). "
        "These tiny models leave each rank little compute to halve, so a step's fixed costs "
        "(the gradient all-reduce over gloo, per-step Python, cores shared with other jobs) "
        "decide it; it measures the plumbing, not how a 7B model scales. The 7B figures are "
        "estimates from FLOPs at the stated utilisation, not measurements.",
    ]


def render(times: dict, steps: tuple[int, int], batch: int, repeats: int) -> str:
    lines = [
        "## Distributed training (torchrun, CPU)",
        "",
        f"Machine: {describe()} (shared with other jobs). Probe trainers "
        f"(rs_pipeline/jobs/probe.py), global batch {batch}, one thread per process; seconds "
        f"per optimisation step = (time of {steps[1]} steps - time of {steps[0]}) / "
        f"{steps[1] - steps[0]} (score: per stage, 2 stages), median of {repeats} alternating "
        "1/2-process repeats. Both sizes train the same weights (rs_pipeline_tests/jobs).",
        "",
        "| trainer | 1 process (s/step) | 2 processes (s/step) | speed-up |",
        "|---|---|---|---|",
    ]
    for trainer, by in times.items():
        lines.append(f"| {trainer} | {by[1]:.3f} | {by[2]:.3f} | {by[1] / by[2]:.2f}x |")
    lines += ["", "### Plan: the 7B scorer on 8 GPUs", "", *plan_7b(times)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_options(parser, "1 and 2 steps, 1 repeat")
    args = parser.parse_args(argv)
    steps, repeats, batch = ((1, 2), 1, 8) if args.quick else ((2, 6), 2, 8)
    body = render(measure(steps, batch, repeats), steps, batch, repeats)
    print(body)
    write_section("distributed", body, results_file(args))


if __name__ == "__main__":
    main(sys.argv[1:])
