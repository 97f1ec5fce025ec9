"""A pretrained image tower at CPU scale: a CLIP base trained on imagery disjoint from any pool.

    .venv/bin/python -m benchmarks.clip_base OUT.safetensors [--tiles 3000] [--steps 1500]
    .venv/bin/python -m benchmarks.clip_base OUT.safetensors --quick   # 64 tiles, 5 steps

Run from the repo root. The defaults take tens of minutes on 2 cores; --quick proves the
path runs and its weights are good for nothing.

The only pretrained weights offline are a text encoder (MiniLM). This builds the missing image
side the way a team without a RS CLIP would: contrastive training of `rs-resnet-minilm-64` (the
MiniLM tower locked) on procedural SynthRS tiles with their template captions, a world no
RSSCN7 image comes from, so the base is disjoint from the pool and from every evaluation set
by construction. `finetune.clip_weights: OUT.safetensors` then fine-tunes from it; the result
is in RESULTS.md ("what a pretrained image tower changes").
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.captions.templates import TemplateCaptioner
from rs_pipeline.core.models.clip import build_clip, save_clip_weights
from rs_pipeline.core.records import sample_id_of
from rs_pipeline.core.sources.synthrs import SynthRSSource, TileAnnotation
from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive


def synthrs_pairs(tiles: int, seed: int) -> list[tuple[Image.Image, str]]:
    """(image, template caption) pairs of `tiles` SynthRS tiles, two captions each."""
    source, captioner = SynthRSSource("base", tiles, 64, seed), TemplateCaptioner(2, seed)
    pairs = []
    for item in source.iter_items("base"):
        image = Image.open(io.BytesIO(item.data)).convert("RGB")
        view = SampleView(sample_id_of(item.data), image, item.label,
                          TileAnnotation.from_json(item.annotation_json))  # fmt: skip
        pairs += [(image, c.text) for c in captioner.caption([view])]
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--tiles", type=int, default=None, help="SynthRS tiles (default 3000)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 1500)")
    parser.add_argument("--seed", type=int, default=20_261_201)  # never a pool or eval seed
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 64 tiles, 5 steps")
    args = parser.parse_args()
    args.tiles = args.tiles or (64 if args.quick else 3000)
    args.steps = args.steps or (5 if args.quick else 1500)
    start = time.perf_counter()
    pairs = synthrs_pairs(args.tiles, args.seed)
    model, preprocess, _, tokenizer = build_clip("rs-resnet-minilm-64", args.seed)
    plan = ContrastivePlan(steps=args.steps, batch_size=64, lr=5e-4, warmup_steps=50,
                           seed=args.seed, lock_text=True)  # fmt: skip
    losses = train_contrastive(model, preprocess, tokenizer, pairs, plan, log=print)
    save_clip_weights(model, args.out)
    print(f"{len(pairs)} pairs, {args.steps} steps, final loss {losses[-1]:.3f}, "
          f"{time.perf_counter() - start:.0f} s -> {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
