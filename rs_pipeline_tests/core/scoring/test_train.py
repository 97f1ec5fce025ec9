"""Staged training: schedule, stage freezing, early stopping, resume after a crash."""

import pytest
import torch

from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.scoring.train import (
    PairExample,
    StagePlan,
    TrainPlan,
    evaluate,
    lr_at,
    train_scorer,
)
from rs_pipeline.core.sources.synthrs import render_tile

CLASSES = ("forest", "lake", "desert", "residential")


def pairs(seeds: range) -> list[PairExample]:
    out = []
    for s in seeds:
        for i, cls in enumerate(CLASSES):
            image, _ = render_tile(s, cls)
            wrong = CLASSES[(i + 1 + s) % len(CLASSES)]
            out.append(PairExample(image, f"a photo of a {cls}", f"a photo of a {wrong}"))
    return out


@pytest.fixture(scope="module")
def data():
    return pairs(range(0, 12)), pairs(range(100, 106))


def test_lr_warms_up_then_decays_to_zero():
    plan = StagePlan("head", lr=1.0, steps=10, warmup_steps=2)
    lrs = [lr_at(s, plan) for s in range(11)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    assert lrs[10] == pytest.approx(0.0, abs=1e-9)


def test_staged_training_updates_only_each_stages_parameters(tmp_path, data):
    model = ClipHeadScorer(seed=0)
    visual0 = {n: p.detach().clone() for n, p in model.clip.visual.named_parameters()}
    text0 = model.clip.token_embedding.weight.detach().clone()
    plan = TrainPlan(stages=(StagePlan("head", 1e-3, 4), StagePlan("text", 1e-3, 4)),
                     batch_size=8, eval_every=4, patience=10)  # fmt: skip
    train_scorer(model, *data, plan, tmp_path, log=lambda _: None)
    assert all(torch.equal(p, visual0[n]) for n, p in model.clip.visual.named_parameters())
    assert not torch.equal(model.clip.token_embedding.weight, text0)


def test_training_raises_held_out_accuracy_and_keeps_the_best(tmp_path, data):
    train, val = data
    model = ClipHeadScorer(seed=0)
    before = evaluate(model, val, "cpu")
    plan = TrainPlan(stages=(StagePlan("vision", 1e-3, 30, 3),), batch_size=16, eval_every=10)
    result = train_scorer(model, train, val, plan, tmp_path, log=lambda _: None)
    after = evaluate(model, val, "cpu")
    assert result.best_accuracy == pytest.approx(max(h["val_accuracy"] for h in result.history))
    assert after > before + 0.15 and after >= 0.75, (before, after)


def test_early_stopping_ends_a_stage_without_gain(tmp_path, data):
    train, val = data
    plan = TrainPlan(stages=(StagePlan("head", 1e-9, 100),), batch_size=8, eval_every=1,
                     patience=2)  # fmt: skip
    result = train_scorer(ClipHeadScorer(seed=0), train, val, plan, tmp_path, log=lambda _: None)
    assert result.steps_run < 100


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_continues_from_the_last_checkpoint(tmp_path, data):
    train, val = data
    plan = TrainPlan(stages=(StagePlan("head", 1e-3, 8), StagePlan("vision", 1e-4, 6)),
                     batch_size=8, eval_every=2, patience=10)  # fmt: skip
    reference = ClipHeadScorer(seed=0)
    full = train_scorer(reference, train, val, plan, tmp_path / "a", log=lambda _: None)

    def crash_at_stage_2_step_4(message: str) -> None:
        if message.startswith("stage vision step 4/"):
            raise Crash(message)

    crashed = ClipHeadScorer(seed=0)
    with pytest.raises(Crash):
        train_scorer(crashed, train, val, plan, tmp_path / "b", log=crash_at_stage_2_step_4)
    resumed_model = ClipHeadScorer(seed=0)
    resumed = train_scorer(resumed_model, train, val, plan, tmp_path / "b", log=lambda _: None)
    assert resumed.resumed and resumed.steps_run == 2  # only the two steps after step 4
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]
    assert resumed.best_accuracy == pytest.approx(full.best_accuracy)


def test_norms_are_recalibrated_only_after_steps_that_train_them_with_identical_results(
    tmp_path, data, monkeypatch
):
    train, val = data
    plan = TrainPlan(stages=(StagePlan("head", 1e-3, 6), StagePlan("vision", 1e-4, 4)),
                     batch_size=8, eval_every=2, patience=10)  # fmt: skip
    calls = []
    real = ClipHeadScorer.recalibrate_norms

    def counted(self, images, batch_size=64):
        calls.append(self.norms_trainable())
        return real(self, images, batch_size)

    monkeypatch.setattr(ClipHeadScorer, "recalibrate_norms", counted)
    skipping = ClipHeadScorer(seed=0)
    result = train_scorer(skipping, train, val, plan, tmp_path / "a", log=lambda _: None)
    # before training (nothing frozen yet), never in the head stage (its 3 evaluations see
    # the init statistics unchanged), then at each of the vision stage's 2 evaluations
    assert calls == [True, True, True]
    monkeypatch.setattr(ClipHeadScorer, "norms_trainable", lambda self: True)
    always = ClipHeadScorer(seed=0)
    reference = train_scorer(always, train, val, plan, tmp_path / "b", log=lambda _: None)
    assert len(calls) == 3 + 1 + 3 + 2  # the reference recalibrates before every evaluation
    assert [h["val_accuracy"] for h in result.history] == [
        h["val_accuracy"] for h in reference.history
    ]
    for (name, a), b in zip(
        skipping.state_dict().items(), always.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
