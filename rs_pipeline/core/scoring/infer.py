"""Streaming batched inference: every (image, text) pair of a batch through one scorer.

Images stream from the batch's Parquet one row group at a time and pairs flow through a
DataLoader in fixed-size batches, so memory stays bounded whatever the batch size. Learned
scorers prepare tensors inside the workers (collate_fn) and pin memory on CUDA; baselines
score the raw pairs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rs_pipeline.core.scoring.base import Scorer, TrainableScorer


@dataclass(frozen=True)
class PairRef:
    """Which pair a score belongs to."""

    sample_id: str
    caption_id: str


@dataclass(frozen=True)
class PairText:
    """A text to score against an image (a caption candidate, or an answer to a question)."""

    caption_id: str
    text: str
    question: str | None = None


class PairStream(IterableDataset):
    """(PairRef, image, text, question) for every text of every image, row group by row group.

    With several workers, row groups are dealt round-robin (`rg % workers == id`), so each
    pair is produced exactly once.
    """

    def __init__(self, fs, images_path: str, texts: dict[str, list[PairText]]) -> None:
        self.fs, self.images_path, self.texts = fs, images_path, texts

    def __iter__(self) -> Iterator[tuple[PairRef, Image.Image, str, str | None]]:
        info = get_worker_info()
        wid, workers = (info.id, info.num_workers) if info else (0, 1)
        with self.fs.open(self.images_path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            for rg in range(wid, pf.num_row_groups, workers):
                table = pf.read_row_group(rg, columns=["sample_id", "data"])
                for sid, data in zip(*table.to_pydict().values(), strict=True):
                    texts = self.texts.get(sid)
                    if not texts:
                        continue
                    image = Image.open(io.BytesIO(data)).convert("RGB")
                    for t in texts:
                        yield PairRef(sid, t.caption_id), image, t.text, t.question


class _Collate:
    """Batches pairs; learned scorers turn them into tensors here (inside the worker)."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.tensors = isinstance(scorer, TrainableScorer)

    def __call__(self, items):
        refs, images, texts, questions = (list(x) for x in zip(*items, strict=True))
        if self.tensors:
            return refs, self.scorer.prepare(images, texts, questions)
        return refs, (images, texts, questions)


def score_pairs(
    scorer: Scorer,
    stream: PairStream,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "cpu",
) -> Iterator[tuple[list[PairRef], list[float]]]:
    """Yield (refs, scores) batch by batch; nothing accumulates in memory."""
    cuda = device.startswith("cuda")
    loader = DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_Collate(scorer),
        pin_memory=cuda,
    )
    if isinstance(scorer, torch.nn.Module):
        scorer.to(device).eval()
    with torch.inference_mode():
        for refs, payload in loader:
            if isinstance(payload, dict):
                batch = {k: v.to(device, non_blocking=cuda) for k, v in payload.items()}
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    scores = scorer(**batch).float().cpu().tolist()  # (B,)
            else:
                scores = scorer.score(*payload)
            yield refs, scores
