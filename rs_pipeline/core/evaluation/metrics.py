"""Evaluation metrics on normalised CLIP features: zero-shot accuracy and retrieval recall."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TEMPLATES = ("a satellite photo of {c}.", "a satellite image of {c}", "an aerial photo of {c}.")


def class_prompts(classes: Sequence[str], names: dict[str, str] | None = None) -> list[list[str]]:
    """Prompts per class; folder names map to readable phrases where `names` says so."""
    names = names or {}
    return [[t.format(c=names.get(c, c.replace("_", " "))) for t in TEMPLATES] for c in classes]


def zero_shot_accuracy(
    image_features: torch.Tensor, class_features: torch.Tensor, labels: torch.Tensor, k: int = 5
) -> tuple[float, float]:
    """(top-1, top-k) accuracy; features (N, D) and (C, D) are L2-normalised here."""
    img = F.normalize(image_features.float(), dim=-1)  # (N, D)
    cls = F.normalize(class_features.float(), dim=-1)  # (C, D)
    logits = img @ cls.T  # (N, C)
    top = logits.topk(min(k, cls.shape[0]), dim=-1).indices  # (N, k)
    top1 = (top[:, 0] == labels).float().mean().item()
    topk = (top == labels[:, None]).any(dim=-1).float().mean().item()
    return top1, topk


def retrieval_recall(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """R@K both ways and their mean; an image may own several texts (`text_to_image`: (T,))."""
    img = F.normalize(image_features.float(), dim=-1)  # (N, D)
    txt = F.normalize(text_features.float(), dim=-1)  # (T, D)
    sims = txt @ img.T  # (T, N)
    out: dict[str, float] = {}
    # text -> image: the text's own image within the top K
    ranks_t2i = sims.argsort(dim=-1, descending=True)  # (T, N)
    hit_pos = (ranks_t2i == text_to_image[:, None]).float().argmax(dim=-1)  # (T,)
    # image -> text: any of the image's texts within the top K
    ranks_i2t = sims.T.argsort(dim=-1, descending=True)  # (N, T)
    owner = text_to_image[ranks_i2t]  # (N, T): image owning each ranked text
    own = owner == torch.arange(img.shape[0])[:, None]  # (N, T)
    first = own.float().argmax(dim=-1)  # (N,) rank of the image's best-ranked own text
    first[~own.any(dim=-1)] = txt.shape[0]  # an image without texts is never a hit
    for k in ks:
        out[f"t2i_R@{k}"] = (hit_pos < k).float().mean().item()
        out[f"i2t_R@{k}"] = (first < k).float().mean().item()
    out["mean_recall"] = sum(out.values()) / len(out)
    return out
