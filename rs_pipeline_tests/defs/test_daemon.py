"""A real `dagster-daemon` picks up a landing drop and a registry checkpoint and runs the chain.

No cron tweak is needed: the nightly sensor handles the latest cron tick on its first evaluation
(an empty cursor), so it acts at once; its interval is set to a few seconds here.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from rs_pipeline.core.landing import MARKER
from rs_pipeline.core.sources.synthrs import SynthRSSource
from rs_pipeline_tests.factories import write_config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEADLINE_S = 480  # two cores shared with other work: seven short runs, each a fresh process


def _drop(landing: Path, batch: str, count: int) -> None:
    for item in SynthRSSource("drop", count, 64, 3).iter_items(batch):
        out = landing / batch / item.label / f"{item.uri.rsplit('/', 1)[-1]}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(item.data)
    (landing / batch / MARKER).write_text("")


def _checkpoint(registry: Path) -> None:
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer

    # Named like scoring.current, so the registered checkpoint becomes the current version.
    ClipHeadScorer(clip="rs-resnet-tiny-64", seed=0).save(registry / "clip-head")


def _config(tmp: Path) -> str:
    landing, registry = tmp / "landing", tmp / "registry"
    _drop(landing, "2026-11-28", 8)
    _checkpoint(registry)
    return write_config(
        tmp,
        sources=[
            {"kind": "synthrs", "name": "synthrs", "count": 16, "seed": 7},
            {"kind": "imagefolder", "name": "landing", "path": f"{landing}/{{batch}}"},
        ],
        finetune={"steps": 2, "seeds": [0], "checkpoint_every": 2, "warmup_steps": 0},
        automation={"landing": str(landing), "registry": str(registry), "sensor_interval_s": 5},
    )


def _wait(instance: dg.DagsterInstance, daemon: subprocess.Popen) -> list[dg.DagsterRun]:
    """Runs once the report has landed and nothing is queued or running; fails at the deadline."""
    unfinished = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                  dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}  # fmt: skip
    report = dg.AssetKey("evaluation_report")
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        assert daemon.poll() is None, "dagster-daemon exited early"
        runs = instance.get_runs()
        failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        assert not failed, f"runs failed: {[(r.run_id, r.asset_selection) for r in failed]}"
        done = instance.get_latest_materialization_event(report) is not None
        if done and runs and not any(r.status in unfinished for r in runs):
            return runs
        time.sleep(3)
    pytest.fail(f"the chain did not finish in {DEADLINE_S} s; runs: {instance.get_runs()}")


@pytest.mark.slow
def test_daemon_runs_nightly_drop_and_registry_checkpoint_to_a_report(tmp_path):
    config = _config(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(yaml.safe_load((REPO / "workspace.yaml").read_text())))
    env = {**os.environ, "DAGSTER_HOME": str(home), "RS_PIPELINE_CONFIG": config}
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        runs = _wait(instance, daemon)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert instance.get_dynamic_partitions("batch") == ["2026-11-28"]
    (version,) = instance.get_dynamic_partitions("scorer_version")
    assert version.startswith("clip-head-")
    scored = instance.get_materialized_partitions(dg.AssetKey("pair_scores"))
    assert {str(k) for k in scored} == {f"2026-11-28|{version}"}
    assert instance.get_materialized_partitions(dg.AssetKey("curated_subsets")) == {version}
