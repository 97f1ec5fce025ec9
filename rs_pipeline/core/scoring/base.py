"""One interface for every scorer: learned (trainable) or baseline.

A scorer maps image-text pairs (optionally with a question) to one float each; higher means a
better caption/answer for that image. Learned scorers are `nn.Module`s that split preparation
(CPU work, usable in a DataLoader's collate_fn) from the differentiable forward pass, and name
the parameters each training stage may update.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from PIL import Image

Stage = Literal["head", "vision", "text"]


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores pairs: `score(images, texts, questions=None) -> list[float]`."""

    backend: str

    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
    ) -> list[float]: ...


@runtime_checkable
class TrainableScorer(Scorer, Protocol):
    """A scorer the staged trainer can fit (an `nn.Module`)."""

    def prepare(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tensors for `forward`; pure CPU work, safe in a DataLoader worker."""
        ...

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        """Scores (B,), softplus-positive, differentiable."""
        ...

    def stage_parameters(self, stage: Stage) -> list[torch.nn.Parameter]:
        """Parameters updated in a training stage: head; vision tower + head; text + head."""
        ...

    def save(self, path: str | Path) -> None:
        """safetensors weights + a JSON config in a folder (never pickle)."""
        ...

    def config_dict(self) -> dict[str, Any]:
        """The JSON-able config that rebuilds this scorer's architecture."""
        ...


def check_pair_lengths(images: Sequence, texts: Sequence, questions: Sequence | None) -> None:
    """ValueError unless there is one text (and one question, if any) per image."""
    if len(images) != len(texts):
        raise ValueError(
            f"got {len(images)} images but {len(texts)} texts; pass one text per image"
        )
    if questions is not None and len(questions) != len(texts):
        raise ValueError(f"got {len(questions)} questions for {len(texts)} texts; pass one or None")


def score_in_batches(
    model: torch.nn.Module,
    images: Sequence[Image.Image],
    texts: Sequence[str],
    questions: Sequence[str | None] | None,
    batch_size: int,
) -> list[float]:
    """`prepare` + `forward` over fixed-size batches under inference and eval mode.

    The shared body of every learned scorer's `score`; the training mode is restored after.
    """
    check_pair_lengths(images, texts, questions)
    if not texts:
        return []
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    out: list[float] = []
    try:
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                qs = None if questions is None else questions[i : i + batch_size]
                batch = model.prepare(images[i : i + batch_size], texts[i : i + batch_size], qs)
                out += model(**{k: v.to(device) for k, v in batch.items()}).float().tolist()
    finally:
        model.train(was_training)
    return out
