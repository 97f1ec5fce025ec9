"""End to end through Dagster: the tiny preset, idempotent re-materialisation, two runs at once."""

import multiprocessing as mp
import shutil
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.definitions import BATCH_ASSETS
from rs_pipeline.defs.resources import build_resources
from rs_pipeline.launch import materialize_batch

REPO = Path(__file__).resolve().parents[2]


def materialize(config: str, batch: str, instance):
    instance.add_dynamic_partitions("batch", [batch])
    return dg.materialize(
        BATCH_ASSETS, partition_key=batch, resources=build_resources(config), instance=instance
    )


def rows(config: str, table: str) -> list[tuple]:
    store = LineageStore(load_config(config).storage.lineage_db)
    cols = "sample_id, label, source, source_uris" if table == "samples" else "uri, reason, detail"
    return store.query(f"SELECT {cols} FROM {table} ORDER BY ALL").to_pylist()


def test_tiny_preset_materializes_end_to_end_with_passing_checks(tiny_config):
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = materialize(tiny_config, "2026-11-28", instance)
    assert result.success
    assert time.perf_counter() - started < 60  # the tiny preset is for tests
    (mat,) = result.asset_materializations_for_node("rs_images")
    md = mat.metadata
    cfg = load_config(tiny_config)
    assert md["inputs"].value == 24 + 8  # synthrs + sentinel2 in the tiny preset
    assert md["unique"].value + md["duplicates"].value + md["quarantined"].value == 32
    checks = result.get_asset_check_evaluations()
    assert {c.check_name: c.passed for c in checks} == {
        "unique_sample_ids": True,
        "counts_reconcile": True,
        "no_image_in_both_splits": True,
    }
    events = result.get_asset_materialization_events()
    materialized = {e.materialization.asset_key.to_user_string() for e in events}
    assert materialized == {"rs_images", "caption_candidates", "preference_pairs"}
    manifest = pq.read_table(f"{cfg.storage.root}/rs_images/batch=2026-11-28/samples.parquet")
    assert manifest.num_rows == md["unique"].value
    assert set(manifest.column("source").to_pylist()) == {"synthrs", "sentinel2"}


def test_rematerializing_a_batch_leaves_identical_rows(tiny_config):
    with dg.instance_for_test() as instance:
        first = materialize(tiny_config, "b1", instance)
        before = rows(tiny_config, "samples"), rows(tiny_config, "quarantine")
        second = materialize(tiny_config, "b1", instance)
        after = rows(tiny_config, "samples"), rows(tiny_config, "quarantine")
    assert first.success and second.success
    assert before == after and len(before[0]) > 0
    v1, v2 = (
        r.asset_materializations_for_node("rs_images")[0].tags["dagster/data_version"]
        for r in (first, second)
    )
    assert v1 == v2  # the DataVersion is the hash of the manifest


def _launch(config: str, batch: str, home: str) -> None:
    instance = dg.DagsterInstance.from_config(home)
    assert materialize_batch(config, batch, instance=instance).success


@pytest.mark.slow
def test_two_concurrent_runs_write_lineage_without_loss(tiny_config, tmp_path):
    # Both runs share one instance configured by the repository's own dagster.yaml.
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_launch, args=(tiny_config, b, str(home))) for b in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    store = LineageStore(load_config(tiny_config).storage.lineage_db)
    per_batch = store.query("SELECT batch, count(*) AS n FROM samples GROUP BY batch ORDER BY 1")
    counts = dict(zip(*per_batch.to_pydict().values(), strict=True))
    assert set(counts) == {"a", "b"} and counts["a"] == counts["b"] > 0
