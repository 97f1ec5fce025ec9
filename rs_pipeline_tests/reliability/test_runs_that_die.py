"""Runs that die (kill -9): failed in the instance, no temp orphans, no stale training resume."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from dagster._core.test_utils import create_run_for_test

from rs_pipeline.core.artifacts import ArtifactStore, TableWriter
from rs_pipeline.core.config import load_config
from rs_pipeline.core.layout import SCORE_MODEL_ASSET
from rs_pipeline.core.scoring import stage as score_stage
from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.scoring.data import PairData
from rs_pipeline.core.scoring.train import StagePlan, TrainPlan, train_scorer
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.defs.run_hygiene import (
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    fail_dead_runs,
    launch_tags,
)
from rs_pipeline_tests.core.scoring.test_train import pairs
from rs_pipeline_tests.factories import write_config


# -- runs of a dead process are failed -------------------------------------------------------------
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_of_a_dead_process_is_failed_and_a_live_ones_is_left():
    with dg.instance_for_test() as instance:
        dead_tags = launch_tags() | {PID_TAG: str(_dead_pid())}
        dead_tags.pop(PID_START_TAG, None)
        dead = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=dead_tags)
        live = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=launch_tags())
        untagged = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED)
        elsewhere = create_run_for_test(
            instance,
            status=dg.DagsterRunStatus.STARTED,
            tags=dead_tags | {HOST_TAG: "another-host"},
        )

        assert fail_dead_runs(instance) == [dead.run_id]

        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        for run in (live, untagged, elsewhere):
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        failures = [
            e
            for e in instance.all_logs(dead.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        ]
        assert failures and "is gone" in failures[0].dagster_event.message
        assert fail_dead_runs(instance) == []  # failed once


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc start times")
def test_a_reused_pid_does_not_keep_a_dead_run_alive():
    with dg.instance_for_test() as instance:
        reused = launch_tags() | {PID_START_TAG: "1"}  # this pid, but another process's start
        run = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=reused)
        assert fail_dead_runs(instance) == [run.run_id]


def test_runs_launched_in_process_carry_the_process_tags():
    @dg.asset
    def one() -> int:
        return 1

    with dg.instance_for_test() as instance:
        result = dg.materialize([one], instance=instance, tags=launch_tags())
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[PID_TAG] == str(os.getpid())
        assert fail_dead_runs(instance) == []


# -- no temp orphans ---------------------------------------------------------------------------
def test_a_write_drops_the_temp_orphans_of_its_own_file_only(tmp_path):
    store = ArtifactStore(str(tmp_path))
    folder = tmp_path / "pair_scores"
    folder.mkdir()
    orphan = folder / "scores.parquet.tmp-deadbeef"
    orphan.write_bytes(b"")  # what a writer killed right after opening leaves
    other = folder / "other.parquet.tmp-cafe"
    other.write_bytes(b"")
    schema = pa.schema([("x", pa.int64())])
    writer = TableWriter(store, schema, "pair_scores", "scores.parquet")
    assert not orphan.exists() and other.exists()
    writer.write({"x": 1})
    writer.close()
    assert sorted(p.name for p in folder.iterdir()) == ["other.parquet.tmp-cafe", "scores.parquet"]
    assert store.read_table("pair_scores", "scores.parquet").num_rows == 1

    orphan.write_bytes(b"")
    store.write_table(pa.table({"x": [2]}), "pair_scores", "scores.parquet")
    assert not orphan.exists()


# -- score_model snapshots are keyed by the training data ----------------------------------------
class Crash(RuntimeError):
    pass


def _crash_at(prefix: str):
    def log(message: str) -> None:
        if message.startswith(prefix):
            raise Crash(message)

    return log


PLAN = TrainPlan(stages=(StagePlan("head", 1e-3, 6),), batch_size=8, eval_every=2, patience=10)


def test_new_training_data_retrains_and_identical_data_resumes_only_when_cut_short(tmp_path):
    train, val = pairs(range(0, 4)), pairs(range(100, 102))
    spec = load_config(write_config(tmp_path)).scoring.scorers[0]
    key = score_stage.training_key(spec, PairData(train, val, [], ["b1"]))
    same = score_stage.training_key(spec, PairData(list(train), list(val), [], ["b1"]))
    more = score_stage.training_key(
        spec, PairData(train + pairs(range(4, 5)), val, [], ["b1", "b2"])
    )
    changed = score_stage.training_key(spec, PairData(train[::-1], val, [], ["b1"]))
    assert key == same and len({key, more, changed}) == 3

    ckpt, quiet = tmp_path / "ckpt", lambda _: None
    with pytest.raises(Crash):
        train_scorer(ClipHeadScorer(seed=0), train, val, PLAN, ckpt, key=key,
                     log=_crash_at("stage head step 4/"))  # fmt: skip
    grown = train_scorer(ClipHeadScorer(seed=0), train, val, PLAN, ckpt, log=quiet, key=more)
    assert not grown.resumed and grown.steps_run == 6  # a stale run is not resumed
    with pytest.raises(Crash):
        train_scorer(ClipHeadScorer(seed=0), train, val, PLAN, ckpt, key=key,
                     log=_crash_at("stage head step 4/"))  # fmt: skip
    again = train_scorer(ClipHeadScorer(seed=0), train, val, PLAN, ckpt, log=quiet, key=key)
    assert again.resumed and again.steps_run == 2  # cut short: resumed where it stopped


@pytest.mark.slow
def test_score_model_clears_its_snapshot_and_retrains_on_new_batches(tmp_path, monkeypatch):
    scorer = {"name": "head", "backend": "clip_head", "warm_start_steps": 0, "batch_size": 8,
              "eval_every": 2, "stages": [{"stage": "head", "lr": 1e-3, "steps": 4}]}  # fmt: skip
    config = write_config(
        tmp_path,
        scoring={"scorers": [scorer], "current": "head"},
        storage={"root": str(tmp_path / "art"), "lineage_db": str(tmp_path / "l.duckdb"),
                 "work_dir": str(tmp_path / "work")},
    )  # fmt: skip
    cfg = load_config(config)
    (version,) = versions(cfg.scoring)
    store = ArtifactStore(str(tmp_path / "art"))
    val = pairs(range(100, 102))
    one = PairData(pairs(range(0, 3)), val, [], ["b1"])
    two = PairData(one.train + pairs(range(3, 5)), val, [], ["b1", "b2"])
    snapshot = Path(cfg.storage.work_dir) / SCORE_MODEL_ASSET / version / "ckpt" / "last"

    def run(data, log):
        monkeypatch.setattr(score_stage, "load_pair_data", lambda _store: data)
        return score_stage.run_score_model(cfg, version, store, log=log)

    said: list[str] = []
    run(one, said.append)
    assert not (snapshot / "snapshot.json").exists()  # cleared once the model is saved
    with pytest.raises(Crash):
        run(one, _crash_at("stage head step 2/"))
    assert (snapshot / "snapshot.json").exists()
    said.clear()
    run(two, said.append)  # another batch: the cut-short run of `one` is stale
    assert not any(m.startswith("resuming") for m in said)
    with pytest.raises(Crash):
        run(two, _crash_at("stage head step 2/"))
    said.clear()
    run(two, said.append)
    assert any(m.startswith("resuming") for m in said)
