"""Honest names in the Dagster layer: each asset in the package of its stage, one asset list,
sensors in sensors.py, and a launch order that is the asset graph's own."""

import importlib
import pkgutil
import re
from pathlib import Path

import dagster as dg
import pytest

import rs_pipeline.defs
from rs_pipeline import launch
from rs_pipeline.definitions import build_definitions
from rs_pipeline.defs.graph import ASSETS, BATCH_ASSETS, BATCH_KEYS, toposorted

DEFS = Path(rs_pipeline.defs.__file__).parent
PACKAGE = Path(launch.__file__).parent


def _package_of(asset: dg.AssetsDefinition) -> str:
    """The `rs_pipeline.defs` package whose module defines the asset's function."""
    module = asset.op.compute_fn.decorated_fn.__module__
    prefix = "rs_pipeline.defs."
    assert module.startswith(prefix), module
    return module[len(prefix) :].split(".")[0]


def _asset_modules():
    for info in pkgutil.iter_modules([str(DEFS)]):
        if info.ispkg and (DEFS / info.name / "assets.py").exists():
            yield importlib.import_module(f"rs_pipeline.defs.{info.name}.assets")


def test_every_asset_lives_in_the_package_named_for_its_stage_or_group():
    misplaced = {}
    for asset in ASSETS:
        spec = asset.specs_by_key[asset.key]
        names = {spec.tags["stage"], spec.group_name}
        if _package_of(asset) not in names:
            misplaced[asset.key.to_user_string()] = (_package_of(asset), sorted(names))
    assert misplaced == {}


def test_every_asset_defined_under_defs_is_in_the_one_asset_list():
    defined = {
        value.key
        for module in _asset_modules()
        for value in vars(module).values()
        if isinstance(value, dg.AssetsDefinition)
    }
    assert defined == {a.key for a in ASSETS}
    graph = build_definitions("tiny").resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == defined


def test_batch_assets_are_the_assets_partitioned_by_batch_alone_upstream_first():
    assert [k.to_user_string() for k in BATCH_KEYS] == [
        "rs_images",
        "caption_candidates",
        "preference_pairs",
    ]
    assert [a.key for a in BATCH_ASSETS] == BATCH_KEYS
    assert launch.PHASES["batch"] == BATCH_ASSETS


def test_launch_order_is_a_topological_order_of_the_asset_graph():
    order = [a for phase in launch.PHASES.values() for a in phase]
    assert order == toposorted(ASSETS)
    assert sorted(a.key.to_user_string() for a in order) == sorted(
        a.key.to_user_string() for a in ASSETS
    )
    graph = build_definitions("tiny").resolve_asset_graph()
    assert [a.key for a in order] == list(graph.toposorted_asset_keys)  # Dagster's own order
    assert toposorted(ASSETS[::-1]) == order  # whatever order the list is written in
    position = {a.key: i for i, a in enumerate(order)}
    for asset in order:
        for parent in graph.get(asset.key).parent_keys:
            assert position[parent] < position[asset.key], (parent, asset.key)
    assert list(launch.PHASES) == ["batch", "scorer_version", "selection", None]


def test_phases_refuse_an_order_a_launch_cannot_follow():
    @dg.asset(partitions_def=dg.DynamicPartitionsDefinition(name="batch"))
    def first() -> None: ...

    @dg.asset(deps=[first])
    def middle() -> None: ...

    @dg.asset(partitions_def=dg.DynamicPartitionsDefinition(name="batch"), deps=[middle])
    def last() -> None: ...

    with pytest.raises(ValueError, match="comes back to the 'batch' phase"):
        launch.phases([first, middle, last])


def _sources(*paths: Path) -> dict[str, str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    return {str(f.relative_to(PACKAGE.parent)): f.read_text() for f in files}


def test_sensors_live_in_sensors_py_and_schedules_in_schedules_py():
    sensor = re.compile(r"@dg\.(asset_|multi_asset_)?sensor\b|SensorDefinition\(")
    schedule = re.compile(r"@dg\.schedule\b|\bScheduleDefinition\(")
    for name, text in _sources(DEFS).items():
        if sensor.search(text):
            # conditions.py builds the automation-condition sensor of its own conditions.
            assert name.endswith(("automation/sensors.py", "automation/conditions.py")), name
        if schedule.search(text):
            assert name.endswith("schedules.py"), name


def test_no_positional_packing_held_together_by_fmt_skip():
    paths = (DEFS, PACKAGE / "launch.py", PACKAGE / "cli.py", PACKAGE / "definitions.py")
    marked = [name for name, text in _sources(*paths).items() if "fmt: skip" in text]
    assert marked == []
