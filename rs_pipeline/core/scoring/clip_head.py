"""A learned scorer on open_clip towers: image and text embeddings -> small MLP -> softplus score.

The MLP sees [img, txt, img*txt, |img-txt|] of the L2-normalised embeddings, so it can learn both
agreement (the product, whose sum is the CLIP cosine) and what a good caption looks like on its
own. Stages follow the paper: the head alone, then the vision tower + head, then text + head.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from rs_pipeline.core.models.clip import (
    DEFAULT_CLIP,
    build_clip,
    clip_config,
    load_clip_weights,
    register_clip_config,
)
from rs_pipeline.core.scoring.base import Stage, check_pair_lengths, score_in_batches

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
PRIORS = ("none", "clipscore")  # what the head starts from: nothing, or the CLIP cosine
PRIOR_SCALE = 10.0  # initial logit per unit of cosine: a cosine gap of 0.1 is odds e^1
_NOT_TEXT = ("visual.", "logit_scale", "logit_bias")  # CLIP parameters outside the text tower


def _qa_tokens(tokenizer: Any, question: str, answer: str) -> list[int] | None:
    """Token ids for "Q: ... A: ..." that keep the answer when the context is too short."""
    if not hasattr(tokenizer, "encode") or not getattr(tokenizer, "context_length", None):
        return None
    room = tokenizer.context_length - 2  # start and end tokens
    q, a = tokenizer.encode(f"Q: {question}"), tokenizer.encode(f"A: {answer}")
    if len(q) + len(a) > room:
        # Plain truncation would cut the answer, the very thing scored; the question keeps its
        # head and at least a quarter of the context when it is that long.
        a = a[: room - min(len(q), room // 4)]
        q = q[: room - len(a)]
    return [tokenizer.sot_token_id, *q, *a, tokenizer.eot_token_id]


def tokenize_texts(
    tokenizer: Any, texts: Sequence[str], questions: Sequence[str | None] | None = None
) -> torch.Tensor:
    """Token ids (B, T); a question, when given, is prepended as "Q: ... A: ..."."""
    ids = tokenizer(list(texts))  # (B, T)
    for i, question in enumerate(questions or ()):
        if question is None:
            continue
        tokens = _qa_tokens(tokenizer, question, texts[i])
        if tokens is None:  # a tokenizer without `encode` truncates the joined string itself
            ids[i] = tokenizer([f"Q: {question} A: {texts[i]}"])[0]
        else:
            ids[i].zero_()
            ids[i, : len(tokens)] = torch.tensor(tokens)
    return ids


def preprocess_images(preprocess: Callable, images: Sequence[Image.Image]) -> torch.Tensor:
    """Pixel tensors (B, 3, H, W) through a CLIP's validation transform."""
    if not images:
        raise ValueError("no images to prepare")
    return torch.stack([preprocess(im.convert("RGB")) for im in images])


def _build_head(in_dim: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.GELU(), nn.Dropout(dropout)]
    blocks.append(nn.Linear(hidden if layers else in_dim, 1))
    return nn.Sequential(*blocks)


class ClipHeadScorer(nn.Module):
    """Backend "clip_head": open_clip towers + an MLP head; scores are softplus-positive."""

    backend = "clip_head"

    def __init__(
        self,
        clip: str = DEFAULT_CLIP,
        hidden: int = 256,
        layers: int = 2,
        dropout: float = 0.1,
        seed: int = 0,
        clip_weights: str | Path | None = None,
        prior: str = "none",
    ) -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"unknown head prior {prior!r}; allowed: {', '.join(PRIORS)}")
        self.clip_name, self.seed = clip, seed
        self.head_cfg = {"hidden": hidden, "layers": layers, "dropout": dropout, "prior": prior}
        self.clip, _, self.preprocess, self.tokenizer = build_clip(clip, seed)
        if clip_weights is not None:
            load_clip_weights(self.clip, clip_weights)
        self.embed_dim = int(clip_config(clip)["embed_dim"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # the head's init is seeded too, apart from the towers'
            self.head = _build_head(4 * self.embed_dim, hidden, layers, dropout)
        if prior == "clipscore":
            # Start as CLIPScore (a monotone map of the cosine) and learn a correction: with a
            # few hundred judged pairs a free MLP memorises them, a residual on a sound prior
            # can only refine it (and early stopping keeps the prior when it cannot).
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)
            self.prior_scale = nn.Parameter(torch.tensor(PRIOR_SCALE))
        self._norms = [
            m for m in self.clip.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]

    # -- architecture ---------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The JSON-able config that rebuilds this scorer (the CLIP architecture included)."""
        return {
            "backend": self.backend,
            "clip": self.clip_name,
            "clip_config": clip_config(self.clip_name),
            "head": dict(self.head_cfg),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ClipHeadScorer:
        """Build (randomly initialised) from `config_dict()` output."""
        if config.get("backend", cls.backend) != cls.backend:
            raise ValueError(f"config is for backend {config['backend']!r}, not {cls.backend!r}")
        if "clip_config" in config:  # a saved scorer carries its architecture with it
            register_clip_config(config["clip"], config["clip_config"])
        return cls(clip=config["clip"], seed=config.get("seed", 0), **config.get("head", {}))

    def stage_parameters(self, stage: Stage) -> list[nn.Parameter]:
        """Head: the MLP; vision: visual tower + head; text: text tower + head."""
        head = list(self.head.parameters())
        if hasattr(self, "prior_scale"):
            head.append(self.prior_scale)
        if stage == "head":
            return head
        if stage == "vision":
            return list(self.clip.visual.parameters()) + head
        if stage == "text":
            return [
                p for n, p in self.clip.named_parameters() if not n.startswith(_NOT_TEXT)
            ] + head
        raise ValueError(f"unknown stage {stage!r}; use 'head', 'vision' or 'text'")

    # -- tensors --------------------------------------------------------------------------------
    def prepare(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"pixel_values": (B, 3, H, W), "input_ids": (B, T)}; CPU only."""
        check_pair_lengths(images, texts, questions)
        return {
            "pixel_values": preprocess_images(self.preprocess, images),
            "input_ids": tokenize_texts(self.tokenizer, texts, questions),
        }

    def _sync_frozen_norms(self) -> None:
        # A frozen tower must not drift: BatchNorm running statistics would keep updating in
        # train mode even when the stage leaves those weights alone, so frozen norms run in eval.
        for m in self._norms:
            m.training = self.training and any(p.requires_grad for p in m.parameters())

    def norms_trainable(self) -> bool:
        """Whether any BatchNorm has trainable weights now (a stage that trains the vision
        tower); frozen norms run in eval mode, so their statistics cannot have moved."""
        return any(p.requires_grad for m in self._norms for p in m.parameters())

    @torch.no_grad()
    def recalibrate_norms(self, images: Sequence[Image.Image], batch_size: int = 64) -> int:
        """Re-estimate BatchNorm statistics on `images` with the current weights; returns #norms."""
        # Running statistics lag fast-moving weights, so eval-mode scores of a briefly trained
        # ResNet tower can sit far from its train-mode ones; an exact average fixes that.
        if not self._norms or not images:
            return 0
        was_training, device = self.training, next(self.parameters()).device
        momenta = [m.momentum for m in self._norms]
        for m in self._norms:
            m.reset_running_stats()
            m.momentum, m.training = None, True  # momentum None: a cumulative, exact average
        try:
            for i in range(0, len(images), batch_size):
                pixels = preprocess_images(self.preprocess, images[i : i + batch_size])
                self.clip.encode_image(pixels.to(device))
        finally:
            for m, momentum in zip(self._norms, momenta, strict=True):
                m.momentum = momentum
            self.train(was_training)
        return len(self._norms)

    def embed(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised image and text embeddings, each (B, D)."""
        self._sync_frozen_norms()
        img = self.clip.encode_image(pixel_values, normalize=True)  # (B, D)
        txt = self.clip.encode_text(input_ids, normalize=True)  # (B, D)
        return img, txt

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Scores (B,), softplus-positive, differentiable."""
        img, txt = self.embed(pixel_values, input_ids)
        img, txt = img.float(), txt.float()
        # Unit vectors have entries ~1/sqrt(D) and their products ~1/D; rescale to O(1) so the
        # MLP's default init sees every feature block at a similar size.
        root = math.sqrt(self.embed_dim)
        feats = torch.cat(
            [img * root, txt * root, img * txt * self.embed_dim, (img - txt).abs() * root], dim=-1
        )  # (B, 4D)
        logits = self.head(feats).squeeze(-1)  # (B,)
        if hasattr(self, "prior_scale"):
            logits = logits + self.prior_scale * (img * txt).sum(dim=-1)  # + scale * cosine
        return F.softplus(logits)  # (B,)

    # -- scoring --------------------------------------------------------------------------------
    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
        batch_size: int = 64,
    ) -> list[float]:
        """One float per pair, in input order, batched under inference mode and eval mode."""
        return score_in_batches(self, images, texts, questions, batch_size)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Folder with model.safetensors + config.json (never pickle)."""
        from safetensors.torch import save_model

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(self.config_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> ClipHeadScorer:
        """Rebuild from a folder written by `save`, in eval mode."""
        from safetensors.torch import load_model

        folder = Path(path)
        missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} lacks {', '.join(missing)}: provide a folder written by "
                "ClipHeadScorer.save (config.json + model.safetensors)"
            )
        model = cls.from_config(json.loads((folder / CONFIG_FILE).read_text()))
        load_model(model, str(folder / WEIGHTS_FILE), strict=True, device=str(device))
        return model.to(device).eval()
