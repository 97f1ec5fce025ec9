import itertools

import pytest
import torch

from rs_pipeline.core.evaluation.metrics import class_prompts, retrieval_recall, zero_shot_accuracy


def test_zero_shot_accuracy_on_known_features():
    classes = torch.eye(3)  # (C, D)
    images = torch.tensor([[1.0, 0.1, 0], [0, 1, 0.2], [0.9, 0, 1.0]])  # third is closest to 2
    top1, top2 = zero_shot_accuracy(images, classes, torch.tensor([0, 1, 0]), k=2)
    assert top1 == pytest.approx(2 / 3) and top2 == pytest.approx(1.0)


def naive_recall(sims, owner, k):
    t2i = sum(int(owner[t] in sorted(range(sims.shape[1]), key=lambda i: -sims[t, i])[:k])
              for t in range(sims.shape[0])) / sims.shape[0]  # fmt: skip
    i2t = 0
    for i in range(sims.shape[1]):
        ranked = sorted(range(sims.shape[0]), key=lambda t: -sims[t, i])[:k]
        i2t += any(owner[t] == i for t in ranked)
    return t2i, i2t / sims.shape[1]


def test_retrieval_recall_matches_a_naive_reference():
    g = torch.Generator().manual_seed(0)
    images, texts = torch.randn(6, 8, generator=g), torch.randn(12, 8, generator=g)
    owner = torch.tensor([i // 2 for i in range(12)])  # two captions per image
    got = retrieval_recall(images, texts, owner, ks=(1, 2, 5))
    sims = (torch.nn.functional.normalize(texts, dim=-1)
            @ torch.nn.functional.normalize(images, dim=-1).T)  # fmt: skip
    for k in (1, 2, 5):
        t2i, i2t = naive_recall(sims, owner.tolist(), k)
        assert got[f"t2i_R@{k}"] == pytest.approx(t2i)
        assert got[f"i2t_R@{k}"] == pytest.approx(i2t)
    assert got["mean_recall"] == pytest.approx(
        sum(v for key, v in got.items() if key != "mean_recall") / 6
    )


def test_prompts_use_readable_class_names():
    prompts = class_prompts(["river_lake", "parking"], {"parking": "a parking lot"})
    assert prompts[0][0] == "a satellite photo of river lake."
    assert "a satellite image of a parking lot" in prompts[1]
    assert len(list(itertools.chain(*prompts))) == 6
