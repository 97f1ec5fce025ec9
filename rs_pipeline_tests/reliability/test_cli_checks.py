"""`rs-pipeline run`: mistakes are refused before any work with the CLI's own message (exit 2),
progress is one line per step, and an `s3://` root is read with its storage_options."""

from __future__ import annotations

import json
import re
import uuid
from types import SimpleNamespace

import dagster as dg
import pytest

from rs_pipeline import cli, launch
from rs_pipeline.cli import UsageError, check_run_inputs, main
from rs_pipeline.core.artifacts import store_of
from rs_pipeline.core.config import load_config
from rs_pipeline.core.evaluation.summary import Cell, Column, ReportRow, ReportTable
from rs_pipeline.core.layout import REPORT_ASSET
from rs_pipeline_tests.factories import write_config


@pytest.fixture
def no_run(monkeypatch):
    """run_all that fails the test if the CLI gets as far as starting work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(launch, "run_all", refuse)


def test_bad_batch_key_exits_2_with_the_rule_before_any_run(tiny_config, no_run, capsys):
    assert main(["run", "--config", tiny_config, "--batch", "../escape"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rs-pipeline run: --batch: batch key '../escape' is not allowed")
    assert "letters, digits" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["imagefolder", "manifest"])
def test_missing_source_path_exits_2_naming_the_source_and_the_key_to_set(
    tmp_path, kind, no_run, capsys
):
    path = str(tmp_path / "incoming" / "{batch}" / ("" if kind == "imagefolder" else "m.csv"))
    config = write_config(tmp_path, sources=[{"kind": kind, "name": "field", "path": path}])
    assert main(["run", "--config", config, "--batch", "b1"]) == 2
    err = capsys.readouterr().err
    assert f"source 'field': {path.replace('{batch}', 'b1')}" in err.replace("folder ", "").replace(
        "file ", ""
    )
    assert "for batch 'b1'" in err and "set sources[0].path" in err


def test_existing_local_source_for_every_batch_passes_the_check(tmp_path):
    for b in ("b1", "b2"):
        (tmp_path / "in" / b).mkdir(parents=True)
    config = write_config(
        tmp_path, sources=[{"kind": "imagefolder", "path": str(tmp_path / "in" / "{batch}")}]
    )
    check_run_inputs(load_config(config), ["b1", "b2"])
    with pytest.raises(UsageError, match="for batch 'b3'"):
        check_run_inputs(load_config(config), ["b1", "b3"])


def test_remote_source_is_checked_with_its_filesystem(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    prefix = f"/cli-{uuid.uuid4().hex[:8]}"
    fs.pipe(f"{prefix}/b1/forest/x.png", b"png")
    config = write_config(
        tmp_path, sources=[{"kind": "imagefolder", "path": f"memory://{prefix}/{{batch}}"}]
    )
    check_run_inputs(load_config(config), ["b1"])
    with pytest.raises(UsageError, match=r"folder memory://.*/b2 does not exist"):
        check_run_inputs(load_config(config), ["b2"])


def test_run_summary_reads_an_s3_root_with_its_storage_options(tmp_path, monkeypatch, capsys):
    from rs_pipeline_tests.s3.server import loopback_s3

    with loopback_s3() as s3:
        s3.set_env(monkeypatch, endpoint_in_env=False)  # the endpoint only in the config
        config = write_config(
            tmp_path,
            storage={
                "root": f"s3://{s3.bucket}/cli-{uuid.uuid4().hex[:8]}",
                "lineage_db": str(tmp_path / "lineage.duckdb"),
                "storage_options": {"endpoint_url": s3.endpoint},
            },
        )
        cfg = load_config(config)
        store = store_of(cfg)
        cell = Cell("heldout", "top1", 0.5, 0.0, (0,), (0.5,))
        row = ReportRow("all@100", "all", 100.0, (0,), (cell,), ())
        table = ReportTable((row,), (Column("heldout", "top1"),))
        doc = {"table": table.to_dict(), "files": {"html": "x.html"}, "seeds": [0]}
        store.fs.pipe(store.path(REPORT_ASSET, "report.json"), json.dumps(doc).encode())
        done = launch.LaunchResult(True, "b1", cfg.storage.root, cfg.storage.lineage_db)
        monkeypatch.setattr(launch, "run_all", lambda *a, **k: done)
        assert main(["run", "--config", config, "--batch", "b1"]) == 0
    out = capsys.readouterr().out
    assert "batches b1: succeeded" in out and "| all@100 |" in out and "html: x.html" in out


class _Recorder:
    """Stands in for `dg.materialize`: every run succeeds at once."""

    def __call__(self, assets, **kwargs):
        events = [
            SimpleNamespace(materialization=SimpleNamespace(asset_key=a.key, metadata={}))
            for a in assets
        ]
        return SimpleNamespace(success=True, get_asset_materialization_events=lambda: events)


def test_run_all_reports_every_step_done_of_a_total_that_matches(tiny_config, monkeypatch):
    monkeypatch.setattr(launch.dg, "materialize", _Recorder())
    steps = []
    with dg.instance_for_test() as instance:
        watch = launch.Watch(on_step=steps.append)
        assert launch.run_all(tiny_config, ["b1", "b2"], instance=instance, watch=watch).success
    assert [s.done for s in steps] == list(range(1, len(steps) + 1))
    assert {s.total for s in steps} == {len(steps)}
    assert (steps[0].partition, steps[-1].stage) == ("b1", "evaluation_report")


@pytest.fixture
def first_step_only(monkeypatch):
    """The CLI's run cut to its first launch (the batch's assets, a few seconds), no report."""
    with dg.instance_for_test() as instance:
        monkeypatch.setattr(launch, "_instance", lambda: instance)
        full = launch._launches
        monkeypatch.setattr(launch, "_launches", lambda *a: full(*a)[:1])
        monkeypatch.setattr(cli, "_report_summary", lambda cfg: "THE TABLE")
        yield


PROGRESS = re.compile(r"^\[\s*1/\d+\] rs_images,caption_candidates,preference_pairs \[b1\]  ok in ")


def test_run_prints_progress_lines_and_no_dagster_debug_events(tiny_config, first_step_only, capfd):
    assert main(["run", "--config", tiny_config, "--batch", "b1"]) == 0
    out, err = capfd.readouterr()
    assert any(PROGRESS.match(line) for line in out.splitlines()), out
    assert "ETA " in out and "THE TABLE" in out
    assert " - DEBUG - " not in out + err and "STEP_START" not in out + err


def test_verbose_run_brings_back_the_dagster_event_stream(tiny_config, first_step_only, capfd):
    assert main(["run", "--config", tiny_config, "--batch", "b1", "--verbose"]) == 0
    out, err = capfd.readouterr()
    assert any(PROGRESS.match(line) for line in out.splitlines()), out
    assert " - DEBUG - " in err and "STEP_START" in err
