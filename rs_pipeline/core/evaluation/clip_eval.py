"""Scoring one CLIP on one benchmark: zero-shot top-1/top-5 and retrieval R@K both ways."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from rs_pipeline.core.evaluation.benchmarks import Benchmark
from rs_pipeline.core.evaluation.metrics import retrieval_recall, zero_shot_accuracy
from rs_pipeline.core.progress import Progress


@torch.no_grad()
def _encode_images(
    model,
    preprocess: Callable,
    images: Sequence[Image.Image],
    *,
    batch: int,
    device: str,
    progress: Progress,
) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        pixels = torch.stack([preprocess(im) for im in images[i : i + batch]]).to(device)
        out.append(model.encode_image(pixels).float().cpu())  # (b, D)
        progress.step(len(pixels))
    return torch.cat(out)  # (N, D)


@torch.no_grad()
def _encode_texts(
    model,
    tokenizer: Callable,
    texts: Sequence[str],
    *,
    batch: int,
    device: str,
    progress: Progress,
) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        chunk = list(texts[i : i + batch])
        out.append(model.encode_text(tokenizer(chunk).to(device)).float().cpu())  # (b, D)
        progress.step(len(chunk))
    return torch.cat(out)  # (T, D)


def evaluate_clip(
    model: torch.nn.Module,
    preprocess: Callable,
    tokenizer: Callable,
    bench: Benchmark,
    batch_size: int = 128,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Metrics of `model` on `bench`; class prompts are averaged per class (CLIP's ensemble).
    Progress lines (images and texts encoded of the benchmark's, rate, ETA) go through `log`."""
    if not bench.images:
        raise ValueError(f"benchmark {bench.name!r} has no images left to evaluate")
    model.to(device).eval()
    flat = [p for prompts in bench.prompts for p in prompts]  # every class's prompts
    total = len(bench.images) + len(flat) + len(bench.texts)
    progress = Progress(total, log, what=f"{bench.name}: encoded images + texts")
    enc = {"batch": batch_size, "device": device, "progress": progress}
    images = _encode_images(model, preprocess, bench.images, **enc)
    metrics: dict[str, float] = {}
    if bench.classification:
        per_class = len(bench.prompts[0])
        prompt_feats = _encode_texts(model, tokenizer, flat, **enc)
        prompt_feats = F.normalize(prompt_feats, dim=-1)
        classes = prompt_feats.view(len(bench.classes), per_class, -1).mean(dim=1)  # (C, D)
        top1, top5 = zero_shot_accuracy(images, classes, torch.tensor(bench.labels), k=5)
        metrics |= {"top1": top1, "top5": top5}
    if bench.retrieval:
        texts = _encode_texts(model, tokenizer, bench.texts, **enc)
        metrics |= retrieval_recall(images, texts, torch.tensor(bench.text_to_image))
    return metrics
