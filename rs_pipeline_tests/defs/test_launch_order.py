"""`run_all` materializes in the graph's order and stops where it always did (no real runs:
`dg.materialize` is replaced by a recorder)."""

from types import SimpleNamespace

import dagster as dg
import pytest

from rs_pipeline import launch
from rs_pipeline.core.config import load_config
from rs_pipeline.core.scoring.versions import versions

BATCH = ("rs_images", "caption_candidates", "preference_pairs")
BATCHES = ["b1", "b2"]


class Recorder:
    """Stands in for `dg.materialize`: records (asset names, partition key), fails on request."""

    def __init__(self, fail=lambda names, key: False):
        self.calls, self.fail = [], fail

    def __call__(self, assets, partition_key=None, resources=None, instance=None, **kwargs):
        names = tuple(a.key.to_user_string() for a in assets)
        key = None if partition_key is None else str(partition_key)
        self.calls.append((names, key))
        events = [
            SimpleNamespace(materialization=SimpleNamespace(asset_key=dg.AssetKey(n), metadata={}))
            for n in names
        ]
        return SimpleNamespace(
            success=not self.fail(names, key), get_asset_materialization_events=lambda: events
        )


@pytest.fixture
def recorded(tiny_config, monkeypatch):
    def run(fail=lambda names, key: False):
        recorder = Recorder(fail)
        monkeypatch.setattr(launch.dg, "materialize", recorder)
        with dg.instance_for_test() as instance:
            result = launch.run_all(tiny_config, BATCHES, instance=instance)
            registered = {
                name: instance.get_dynamic_partitions(name)
                for name in ("batch", "scorer_version", "selection")
            }
        return result, recorder.calls, registered

    return load_config(tiny_config), run


def expected_calls(cfg) -> list[tuple]:
    """Today's order: each batch, per scorer version its model, scores and subsets, each
    selection's fine-tune, then the report."""
    calls = [(BATCH, b) for b in BATCHES]
    for v in versions(cfg.scoring):
        calls += [(("score_model",), v)]
        calls += [(("pair_scores",), f"{b}|{v}") for b in BATCHES]  # dimensions by name
        calls += [(("curated_subsets",), v)]
    calls += [(("clip_checkpoints",), s) for s in launch.selections_of(cfg)]
    return calls + [(("evaluation_report",), None)]


def test_run_all_materializes_in_the_graph_order_with_suffixed_metadata(recorded):
    cfg, run = recorded
    result, calls, registered = run()
    assert result.success and calls == expected_calls(cfg)
    vs = list(versions(cfg.scoring))
    assert registered == {"batch": BATCHES, "scorer_version": vs, "selection": []}
    assert (result.batch, result.artifact_root) == ("b1,b2", cfg.storage.root)
    v = vs[0]
    assert {"rs_images[b1]", "preference_pairs[b2]", f"score_model[{v}]"} <= set(result.metadata)
    assert {f"pair_scores[{v}|b2]", f"curated_subsets[{v}]", "evaluation_report"} <= set(
        result.metadata
    )
    assert {f"clip_checkpoints[{s}]" for s in launch.selections_of(cfg)} <= set(result.metadata)


def test_a_failing_batch_stops_before_the_next_batch(recorded):
    _, run = recorded
    result, calls, _ = run(fail=lambda names, key: key == "b1")
    assert not result.success and calls == [(BATCH, "b1")]


def test_a_failing_scorer_finishes_the_scorers_then_stops(recorded):
    cfg, run = recorded
    result, calls, _ = run(fail=lambda names, key: names == ("score_model",))
    assert not result.success
    assert calls == [
        c for c in expected_calls(cfg) if c[0][0] not in ("clip_checkpoints", "evaluation_report")
    ]


def test_a_failing_fine_tune_finishes_the_fine_tunes_but_writes_no_report(recorded):
    cfg, run = recorded
    result, calls, _ = run(fail=lambda names, key: names == ("clip_checkpoints",))
    assert not result.success and calls == expected_calls(cfg)[:-1]


def test_the_terminal_summary_shows_figures_not_previews():
    from rs_pipeline.launch import LaunchResult

    png = "![score histogram](data:image/png;base64," + "A" * 4000 + ")"
    table = "| pairs | images |\n|---|---|\n| 10 | 2 |"
    result = LaunchResult(
        success=True,
        batch="b1",
        artifact_root="/a",
        lineage_db="/l.db",
        metadata={"pair_scores": {"pairs": 10, "scorer_version": "v1", "hist": png, "t": table}},
    )
    text = result.describe()
    assert "'pairs': 10" in text and "'scorer_version': 'v1'" in text
    assert "base64" not in text and "|---|" not in text
