"""A locked pretrained text tower (LiT-style): features once per unique text, projection trains.

Fine-tuning gently from a pretrained base, as the paper does, at CPU scale: the only pretrained
weights offline are a text encoder (MiniLM), and updating 22M text parameters on a few
thousand captions would both cost most of a step and wash out what it knows. Locking it keeps
its language knowledge, lets the image tower learn to meet it, and makes a step cost only the
image tower: each unique caption is encoded once (B, H) and only the projection to the joint
space trains. Zero-shot evaluation runs the full tower, so training and evaluation agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


class LockedText:
    """Frozen encoder features of every text of a training set, projected per batch."""

    def __init__(self, model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str],
                 device: str = "cpu", batch_size: int = 256) -> None:  # fmt: skip
        tower = getattr(model, "text", None)
        if not all(hasattr(tower, a) for a in ("transformer", "pooler", "proj")):
            raise ValueError(
                "lock_text needs a CLIP whose text tower is a pretrained HF encoder (open_clip "
                "`hf_model_name`), e.g. clip_model: rs-resnet-minilm-64; or set lock_text: false"
            )
        for p in tower.transformer.parameters():
            p.requires_grad_(False)
        unique = sorted(set(texts))
        self.index = {t: i for i, t in enumerate(unique)}
        tower.transformer.to(device).eval()  # no dropout in the features it is frozen at
        parts = []
        with torch.no_grad():
            for i in range(0, len(unique), batch_size):
                ids = tokenizer(unique[i : i + batch_size]).to(device)  # (b, T)
                mask = (ids != tower.config.pad_token_id).long()
                out = tower.transformer(input_ids=ids, attention_mask=mask)
                parts.append(tower.pooler(out, mask).float())  # (b, H)
        self.features = torch.cat(parts)  # (U, H), U unique texts

    def encode(self, model: torch.nn.Module, texts: Sequence[str]) -> torch.Tensor:
        """Normalised joint-space embeddings (B, D) of `texts`, differentiable in `proj`."""
        idx = torch.tensor([self.index[t] for t in texts], device=self.features.device)
        return F.normalize(model.text.proj(self.features[idx]), dim=-1)
