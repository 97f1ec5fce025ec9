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
from rs_pipeline.core.training.snapshots import Snapshots

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


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.fixture(params=["in_memory", "on_disk"])
def best_kept(request, monkeypatch):
    """Both homes of the best weights: RAM (small models) and a file per improvement (large)."""
    if request.param == "on_disk":
        monkeypatch.setattr("rs_pipeline.core.scoring.train.IN_MEMORY_BEST_MAX_BYTES", 0)
    return request.param


def test_resume_from_a_snapshot_between_evaluations_ends_exactly_as_an_uninterrupted_run(
    tmp_path, best_kept
):
    train, val = pairs(range(0, 4)), pairs(range(100, 102))
    # a snapshot at plan step 4 = vision step 2, where nothing is evaluated (BatchNorm
    # statistics mid-stage, uncalibrated); the crash comes at vision step 3's evaluation
    plan = TrainPlan(stages=(StagePlan("head", 1e-3, 2), StagePlan("vision", 1e-3, 4)),
                     batch_size=4, eval_every=3, patience=10, checkpoint_every=4)  # fmt: skip
    reference = ClipHeadScorer(seed=0)
    full = train_scorer(reference, train, val, plan, tmp_path / "a", log=lambda _: None)

    def crash_at_vision_step_3(message: str) -> None:
        if message.startswith("stage vision step 3/"):
            raise Crash(message)

    with pytest.raises(Crash):
        train_scorer(ClipHeadScorer(seed=0), train, val, plan, tmp_path / "b",
                     log=crash_at_vision_step_3)  # fmt: skip
    resumed_model = ClipHeadScorer(seed=0)
    resumed = train_scorer(resumed_model, train, val, plan, tmp_path / "b", log=lambda _: None)
    assert resumed.resumed and resumed.steps_run == 2  # vision steps 3 and 4
    assert resumed.history == full.history and resumed.best_accuracy == full.best_accuracy
    _states_equal(resumed_model, reference)


def test_the_run_ends_on_the_weights_of_its_best_evaluation(tmp_path, monkeypatch, best_kept):
    train, val = pairs(range(0, 2)), pairs(range(100, 101))
    accuracies, seen = iter([0.5, 0.9, 0.6, 0.7]), []

    def scripted(model, pairs, device, batch_size=64):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(accuracies)

    monkeypatch.setattr("rs_pipeline.core.scoring.train.evaluate", scripted)
    # evaluations: before training, head steps 2 and 4, text step 2; the best is head step 2
    plan = TrainPlan(stages=(StagePlan("head", 1e-2, 4), StagePlan("text", 1e-2, 2)),
                     batch_size=4, eval_every=2, patience=10)  # fmt: skip
    model = ClipHeadScorer(seed=0)
    result = train_scorer(model, train, val, plan, tmp_path, log=lambda _: None)
    assert result.best_accuracy == 0.9 and len(seen) == 4
    assert not torch.equal(seen[1]["head.0.weight"], seen[2]["head.0.weight"])
    for name, value in model.state_dict().items():
        assert torch.equal(value, seen[1][name]), name


def test_snapshots_follow_checkpoint_every_and_the_best_weights_are_written_beside_them(
    tmp_path, monkeypatch, best_kept
):
    train, val = pairs(range(0, 2)), pairs(range(100, 101))
    saved = []
    real = Snapshots.save

    def recorded(self, *, model, optimizer, progress):
        saved.append(progress["step"])
        real(self, model=model, optimizer=optimizer, progress=progress)

    monkeypatch.setattr(Snapshots, "save", recorded)
    plan = TrainPlan(stages=(StagePlan("head", 1e-3, 6),), batch_size=4, eval_every=2,
                     patience=10, checkpoint_every=3)  # fmt: skip
    train_scorer(ClipHeadScorer(seed=0), train, val, plan, tmp_path, log=lambda _: None)
    assert saved == [3, 6]  # not at every evaluation (steps 2, 4, 6)
    progress = Snapshots(tmp_path / "last").progress()
    assert [p.name for p in tmp_path.glob("best*")] == [progress["best_file"]]


def test_norms_recalibrate_on_each_distinct_training_image_once(tmp_path, monkeypatch):
    one_per_image = pairs(range(0, 2))
    train = [p for p in one_per_image for _ in range(3)]  # three pairs (captions) per image
    calls = []
    monkeypatch.setattr(ClipHeadScorer, "recalibrate_norms",
                        lambda self, images, batch_size=64: calls.append(images))  # fmt: skip
    plan = TrainPlan(stages=(StagePlan("vision", 1e-3, 1),), batch_size=4, eval_every=1)
    train_scorer(ClipHeadScorer(seed=0), train, pairs(range(100, 101)), plan, tmp_path,
                 log=lambda _: None)  # fmt: skip
    assert len(calls) == 2  # before training and after the vision step
    assert all(images == [p.image for p in one_per_image] for images in calls)
