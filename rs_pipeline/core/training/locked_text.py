"""A locked pretrained text tower (LiT-style): features once per unique text, projection trains.

Fine-tuning gently from a pretrained base, as the paper does, at CPU scale: the only pretrained
weights offline are a text encoder (MiniLM), and updating 22M text parameters on a few
thousand captions would both cost most of a step and wash out what it knows. Locking it keeps
its language knowledge, lets the image tower learn to meet it, and makes a step cost only the
image tower: each unique caption is encoded once (B, H) and only the projection to the joint
space trains. Zero-shot evaluation runs the full tower, so training and evaluation agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

_CACHE: dict[tuple[str, str], torch.Tensor] = {}  # (encoder, texts) -> features (U, H)
_CACHE_SIZE = 4


def _fingerprint(tower: torch.nn.Module) -> str:
    """A digest of the frozen encoder's weights: cached features are reused only for them."""
    h = hashlib.blake2b(digest_size=16)
    for name, p in sorted(tower.transformer.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class LockedText:
    """Frozen encoder features of every text of a training set, projected per batch."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Callable,
        texts: Sequence[str],
        device: str = "cpu",
        batch_size: int = 256,
    ) -> None:
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
        key = (_fingerprint(tower), hashlib.sha256("\x1f".join(unique).encode()).hexdigest())
        if key not in _CACHE:  # seeds of one selection share the frozen features
            parts = []
            with torch.no_grad():
                for i in range(0, len(unique), batch_size):
                    ids = tokenizer(unique[i : i + batch_size]).to(device)  # (b, T)
                    mask = (ids != tower.config.pad_token_id).long()
                    out = tower.transformer(input_ids=ids, attention_mask=mask)
                    parts.append(tower.pooler(out, mask).float())  # (b, H)
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = torch.cat(parts).cpu()  # (U, H), U unique texts
        self.features = _CACHE[key].to(device)

    def encode(self, model: torch.nn.Module, texts: Sequence[str]) -> torch.Tensor:
        """Normalised joint-space embeddings (B, D) of `texts`, differentiable in `proj`."""
        idx = torch.tensor([self.index[t] for t in texts], device=self.features.device)
        return F.normalize(model.text.proj(self.features[idx]), dim=-1)
