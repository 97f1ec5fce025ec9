"""Untrained baselines every learned scorer must beat: CLIPScore and a seeded random score.

CLIPScore is the cosine of a CLIP's normalised image and text embeddings. Built from a
`ClipHeadScorer`'s towers it shares the very same CLIP, so the head's gain is measured alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from rs_pipeline.core.models.clip import DEFAULT_CLIP, build_clip, load_clip_weights
from rs_pipeline.core.scoring.base import check_pair_lengths
from rs_pipeline.core.scoring.clip_head import (
    ClipHeadScorer,
    preprocess_images,
    tokenize_texts,
)


class ClipScoreScorer:
    """Backend "clipscore": cosine(image, text) in [-1, 1] from a CLIP, no training."""

    backend = "clipscore"

    def __init__(self, model: nn.Module, preprocess: Callable, tokenizer: Any) -> None:
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer

    @classmethod
    def from_clip_head(cls, scorer: ClipHeadScorer) -> ClipScoreScorer:
        """CLIPScore on the same CLIP towers (shared, not copied) as a learned head scorer."""
        return cls(scorer.clip, scorer.preprocess, scorer.tokenizer)

    @classmethod
    def from_name(
        cls, name: str = DEFAULT_CLIP, seed: int = 0, weights: str | Path | None = None
    ) -> ClipScoreScorer:
        """Build a project CLIP by name, optionally loading local safetensors weights."""
        model, _, preprocess, tokenizer = build_clip(name, seed)
        if weights is not None:
            load_clip_weights(model, weights)
        return cls(model, preprocess, tokenizer)

    @torch.inference_mode()
    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
        batch_size: int = 64,
    ) -> list[float]:
        """Cosine per pair, in input order; a question is prepended as "Q: ... A: ..."."""
        check_pair_lengths(images, texts, questions)
        if not texts:
            return []
        was_training, device = self.model.training, next(self.model.parameters()).device
        self.model.eval()
        out: list[float] = []
        try:
            for i in range(0, len(texts), batch_size):
                qs = None if questions is None else questions[i : i + batch_size]
                pixels = preprocess_images(self.preprocess, images[i : i + batch_size])
                ids = tokenize_texts(self.tokenizer, texts[i : i + batch_size], qs)
                img = self.model.encode_image(pixels.to(device), normalize=True)  # (B, D)
                txt = self.model.encode_text(ids.to(device), normalize=True)  # (B, D)
                out += (img.float() * txt.float()).sum(dim=-1).clamp(-1.0, 1.0).tolist()
        finally:
            self.model.train(was_training)
        return out


def image_digest(image: Image.Image) -> str:
    """A stable digest of an image's mode, size and pixels (independent of file encoding)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}|{image.size[0]}x{image.size[1]}|".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class RandomScorer:
    """Backend "random": a seeded hash of (seed, image, question, text) -> [0, 1)."""

    backend = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score_one(self, image: Image.Image, text: str, question: str | None = None) -> float:
        """The score of one pair; depends on nothing but the pair and the seed."""
        key = json.dumps([self.seed, image_digest(image), question, text]).encode()
        word = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
        return (word >> 11) / 2.0**53  # 53 bits: exact in a float, so never rounds up to 1.0

    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
    ) -> list[float]:
        """One deterministic, order-independent float in [0, 1) per pair."""
        check_pair_lengths(images, texts, questions)
        qs = questions if questions is not None else [None] * len(texts)
        return [self.score_one(im, t, q) for im, t, q in zip(images, texts, qs, strict=True)]
