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
from rs_pipeline.defs.graph import BATCH_ASSETS
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
    # Create the instance's sqlite schema once, as a deployed instance has it before any run:
    # two processes creating it at the same moment race ("table runs already exists").
    dg.DagsterInstance.from_config(str(home)).dispose()
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


def _range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


@pytest.mark.slow
def test_one_backfill_run_covers_several_batches_and_counts_reconcile(tiny_config):
    from rs_pipeline.core.scoring.versions import versions
    from rs_pipeline.defs.scoring.assets import pair_scores, score_model

    cfg = load_config(tiny_config)
    random_v = next(v for v, s in versions(cfg.scoring).items() if s.backend == "random")
    resources = build_resources(tiny_config)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batch", ["b1", "b2"])
        instance.add_dynamic_partitions("scorer_version", [random_v])
        batches = dg.materialize(
            BATCH_ASSETS, instance=instance, resources=resources, tags=_range_tags("b1", "b2")
        )
        dg.materialize(
            [score_model], partition_key=random_v, instance=instance, resources=resources
        )
        keys = [f"{b}|{random_v}" for b in ("b1", "b2")]  # batch|scorer_version
        scores = dg.materialize(
            [pair_scores], instance=instance, resources=resources, tags=_range_tags(*keys)
        )
        runs = instance.get_runs()
    assert batches.success and scores.success
    assert len(runs) == 3  # two batches in one run, the scorer, two score partitions in one run
    (mat,) = {e.materialization.metadata["partitions"].value
              for e in batches.get_asset_materialization_events()
              if e.materialization.asset_key == dg.AssetKey("rs_images")}  # fmt: skip
    assert mat == 2
    md = batches.asset_materializations_for_node("rs_images")[0].metadata
    per = md["by_partition"].value
    assert set(per) == {"b1", "b2"}
    assert md["inputs"].value == sum(p["inputs"] for p in per.values()) == 2 * 32
    assert md["inputs"].value == (
        md["unique"].value + md["duplicates"].value + md["quarantined"].value
    )
    store = LineageStore(cfg.storage.lineage_db)

    def per_batch(table: str) -> dict[str, int]:
        rows = store.query(f"SELECT batch, count(*) AS n FROM {table} GROUP BY 1").to_pylist()
        return {r["batch"]: r["n"] for r in rows}

    assert per_batch("samples") == {b: per[b]["unique"] for b in ("b1", "b2")}
    score_md = scores.asset_materializations_for_node("pair_scores")[0].metadata
    assert sum(per_batch("scores").values()) == score_md["pairs"].value
    assert set(per_batch("scores")) == {"b1", "b2"}
