"""Contrastive training: a run cut short resumes exactly where an uninterrupted run would be."""

import pytest
import torch

from rs_pipeline.core.models.clip import build_clip
from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive
from rs_pipeline.core.training.snapshots import Snapshots
from rs_pipeline_tests.factories import noise_rgb

PLAN = ContrastivePlan(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, seed=3)


class _Crash(Exception):
    pass


class CrashAfterFirstSnapshot(Snapshots):
    """Writes its snapshot, then dies: a pod evicted mid-training."""

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        raise _Crash


def _pairs():
    return [(noise_rgb(64, seed=i), f"a satellite photo number {i}") for i in range(10)]


def _train(plan, snapshots=None, every=0, log=None):
    model, preprocess, _, tokenizer = build_clip("rs-resnet-tiny-64", seed=0)
    losses = train_contrastive(
        model,
        preprocess,
        tokenizer,
        _pairs(),
        plan,
        log=log,
        snapshots=snapshots,
        snapshot_every=every,
    )
    return model, losses


def test_resumed_run_matches_an_uninterrupted_run(tmp_path):
    straight, straight_losses = _train(PLAN)
    with pytest.raises(_Crash):
        _train(PLAN, CrashAfterFirstSnapshot(tmp_path, key="plan-a"), every=3)
    messages = []
    resumed, losses = _train(PLAN, Snapshots(tmp_path, key="plan-a"), 3, messages.append)
    assert "contrastive: resumed at step 3/6" in messages
    assert losses == straight_losses
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_snapshot_of_another_plan_is_not_resumed(tmp_path):
    _train(ContrastivePlan(steps=4, batch_size=4, seed=1), Snapshots(tmp_path, "plan-a"), 2)
    assert Snapshots(tmp_path, "plan-b").progress() is None
    assert Snapshots(tmp_path, "plan-a").progress()["step"] == 4
