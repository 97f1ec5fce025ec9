"""Nightly drops, new scorer checkpoints and the automation chain request exactly the new work."""

import json
from pathlib import Path

import dagster as dg
import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.landing import MARKER
from rs_pipeline.core.scoring.versions import current_version, versions
from rs_pipeline.definitions import build_definitions
from rs_pipeline.defs.graph import BATCH_KEYS
from rs_pipeline.defs.resources import PipelineSettings
from rs_pipeline_tests.factories import write_config

BATCH_ASSETS = [k.to_user_string() for k in BATCH_KEYS]


def landing_drop(landing: Path, batch: str, complete: bool = True) -> None:
    (landing / batch / "harbor").mkdir(parents=True)
    (landing / batch / "harbor" / "a.png").write_bytes(b"png")
    if complete:
        (landing / batch / MARKER).write_text("")


def registry_checkpoint(registry: Path, name: str, weights: bytes = b"weights") -> None:
    (registry / name).mkdir(parents=True)
    (registry / name / "model.safetensors").write_bytes(weights)
    (registry / name / "config.json").write_text(json.dumps({"backend": "clip_head"}))


@pytest.fixture
def setup(tmp_path):
    config = write_config(
        tmp_path,
        automation={"landing": str(tmp_path / "landing"), "registry": str(tmp_path / "registry")},
    )
    (tmp_path / "landing").mkdir()
    (tmp_path / "registry").mkdir()
    with dg.instance_for_test() as instance:
        yield config, build_definitions(config), instance, tmp_path


def tick(defs: dg.Definitions, name: str, config: str, instance, cursor: str | None = None):
    sensor = defs.get_repository_def().get_sensor_def(name)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"settings": PipelineSettings(config=config)},
        definitions=defs,
    )
    return sensor(context)


def report(instance, asset: str, *partitions: str) -> None:
    """Record materializations as if runs had written them (no compute)."""
    for p in partitions or (None,):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=p))


def test_new_drop_in_landing_is_registered_as_one_batch_with_its_run(setup):
    config, defs, instance, tmp = setup
    landing_drop(tmp / "landing", "2026-11-28")
    result = tick(defs, "nightly_landing", config, instance)
    (add,) = result.dynamic_partitions_requests
    assert (add.partitions_def_name, list(add.partition_keys)) == ("batch", ["2026-11-28"])
    (run,) = result.run_requests
    assert run.partition_key == "2026-11-28"
    assert set(run.asset_selection) == {dg.AssetKey(k) for k in BATCH_ASSETS}


def test_already_registered_drop_requests_nothing(setup):
    config, defs, instance, tmp = setup
    landing_drop(tmp / "landing", "2026-11-28")
    instance.add_dynamic_partitions("batch", ["2026-11-28"])
    assert isinstance(tick(defs, "nightly_landing", config, instance), dg.SkipReason)


def test_incomplete_drop_is_not_picked_up(setup):
    config, defs, instance, tmp = setup
    landing_drop(tmp / "landing", "2026-11-28", complete=False)
    assert isinstance(tick(defs, "nightly_landing", config, instance), dg.SkipReason)


def test_nightly_sensor_acts_once_per_cron_tick(setup):
    config, defs, instance, tmp = setup
    landing_drop(tmp / "landing", "2026-11-28")
    first = tick(defs, "nightly_landing", config, instance)
    landing_drop(tmp / "landing", "2026-11-29")  # lands after tonight's run: waits a night
    again = tick(defs, "nightly_landing", config, instance, cursor=first.cursor)
    assert isinstance(again, dg.SkipReason) and "next" in again.skip_message


def test_new_registry_checkpoint_adds_one_scorer_version_once(setup):
    config, defs, instance, tmp = setup
    instance.add_dynamic_partitions("batch", ["b1"])
    report(instance, "preference_pairs", "b1")
    registry_checkpoint(tmp / "registry", "rs-scorer")
    result = tick(defs, "scorer_registry", config, instance)
    (add,) = result.dynamic_partitions_requests
    (version,) = add.partition_keys
    assert add.partitions_def_name == "scorer_version" and version.startswith("rs-scorer-")
    (run,) = result.run_requests
    assert (run.asset_selection, run.partition_key) == ([dg.AssetKey("score_model")], version)
    again = tick(defs, "scorer_registry", config, instance, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason)


def test_registry_sensor_waits_for_preference_pairs(setup):
    config, defs, instance, tmp = setup
    registry_checkpoint(tmp / "registry", "rs-scorer")
    assert isinstance(tick(defs, "scorer_registry", config, instance), dg.SkipReason)


def mk(version: str, batch: str) -> str:
    return str(dg.MultiPartitionKey({"scorer_version": version, "batch": batch}))


class Chain:
    """Ticks of the automation sensor against an instance, carrying the cursor."""

    def __init__(self, defs, instance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def requested(self) -> dict[str, set]:
        result = dg.evaluate_automation_conditions(self.defs, self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        keys = ("pair_scores", "curated_subsets", "clip_checkpoints", "evaluation_report")
        out = {k: set(result.get_requested_partitions(dg.AssetKey(k))) for k in keys}
        out["score_model"] = set(result.get_requested_partitions(dg.AssetKey("score_model")))
        return {k: v for k, v in out.items() if v}


def history(instance, cur: str, other: str) -> None:
    """One batch fully curated under two scorer versions, checkpoints and report included."""
    instance.add_dynamic_partitions("batch", ["b1"])
    instance.add_dynamic_partitions("scorer_version", [cur, other])
    instance.add_dynamic_partitions("selection", [f"{cur}@30", f"{other}@30", "all@100"])
    for asset in BATCH_ASSETS:
        report(instance, asset, "b1")
    report(instance, "score_model", cur, other)
    report(instance, "pair_scores", mk(cur, "b1"), mk(other, "b1"))
    report(instance, "curated_subsets", cur, other)
    report(instance, "clip_checkpoints", f"{cur}@30", f"{other}@30", "all@100")
    report(instance, "evaluation_report")


@pytest.fixture
def chain(tiny_config):
    cfg = load_config(tiny_config)
    cur = current_version(cfg)
    other = next(v for v, s in versions(cfg).items() if s.name == "random")
    with dg.instance_for_test() as instance:
        history(instance, cur, other)
        c = Chain(build_definitions(tiny_config), instance)
        assert c.requested() == {}  # history is not re-run
        yield c, instance, cur, other


@pytest.mark.slow
def test_nightly_chain_requests_only_the_new_batch_under_the_current_version(chain):
    c, instance, cur, other = chain
    instance.add_dynamic_partitions("batch", ["b2"])
    assert c.requested() == {}  # nothing until the batch is ingested
    for asset in BATCH_ASSETS:
        report(instance, asset, "b2")
    assert c.requested() == {"pair_scores": {mk(cur, "b2")}}  # not the other version
    report(instance, "pair_scores", mk(cur, "b2"))
    assert c.requested() == {"curated_subsets": {cur}}
    report(instance, "curated_subsets", cur)
    assert c.requested() == {"clip_checkpoints": {f"{cur}@30", "all@100"}}
    report(instance, "clip_checkpoints", f"{cur}@30", "all@100")
    assert c.requested() == {"evaluation_report": {None}}
    report(instance, "evaluation_report")
    assert c.requested() == {}


@pytest.mark.slow
def test_new_scorer_version_backfills_every_batch_then_its_selection(chain):
    c, instance, cur, other = chain
    new = "rs-scorer-abc123"
    instance.add_dynamic_partitions("batch", ["b2"])
    for asset in BATCH_ASSETS:
        report(instance, asset, "b2")
    report(instance, "pair_scores", mk(cur, "b2"))
    c.requested()  # the nightly's own steps, tested above
    report(instance, "curated_subsets", cur)
    report(instance, "clip_checkpoints", f"{cur}@30", "all@100")
    report(instance, "evaluation_report")
    c.requested()
    instance.add_dynamic_partitions("scorer_version", [new])  # the registry sensor's work
    assert c.requested() == {}  # score_model[new] is the sensor's run, not automation's
    report(instance, "score_model", new)
    assert c.requested() == {"pair_scores": {mk(new, "b1"), mk(new, "b2")}}
    report(instance, "pair_scores", mk(new, "b1"), mk(new, "b2"))
    assert c.requested() == {"curated_subsets": {new}}
    report(instance, "curated_subsets", new)
    instance.add_dynamic_partitions("selection", [f"{new}@30"])  # curated_subsets adds it
    # Only the new selection: the current version's selections and all@100 did not change.
    assert c.requested() == {"clip_checkpoints": {f"{new}@30"}}
    report(instance, "clip_checkpoints", f"{new}@30")
    assert c.requested() == {"evaluation_report": {None}}
