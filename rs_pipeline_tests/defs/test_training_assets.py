"""clip_checkpoints with `training.launcher: torchrun`: the asset trains under
`torchrun --nproc_per_node 2` through PipesSubprocessClient, rank 0 writes the checkpoint and
lineage rows, and the materialization carries the in-process metadata keys."""

import dagster as dg
import pytest

from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.defs.finetune.assets import clip_checkpoints
from rs_pipeline.defs.resources import build_resources
from rs_pipeline_tests.core.pairs.test_stage import curated
from rs_pipeline_tests.factories import write_config

pytestmark = pytest.mark.slow

# clip_checkpoints' metadata in process (rs_pipeline/jobs/metadata.py clip_checkpoints_outcome)
CLIP_KEYS = {"train_pairs", "train_images", "steps", "seeds", "reused_seeds", "final_loss",
             "mean_top1", "excluded_eval_images", "manifest_digest", "checkpoints"}  # fmt: skip


def test_clip_checkpoints_train_under_torchrun_through_pipes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = write_config(
        tmp_path,
        scoring={"scorers": [{"name": "r0", "backend": "random"}], "current": "r0"},
        finetune={"steps": 2, "batch_size": 8, "seeds": [0], "checkpoint_every": 1},
        evaluation={"benchmarks": [{"name": "heldout", "kind": "synthrs", "count": 8}]},
        training={"launcher": "torchrun", "nproc_per_node": 2},
    )
    cfg, store, lineage = curated(config)
    (version,) = versions(cfg.scoring)
    selection = f"{version}@30"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("selection", [selection])
        result = dg.materialize([clip_checkpoints], partition_key=selection, instance=instance,
                                resources=build_resources(config))  # fmt: skip
        lines = [r.user_message for r in instance.all_logs(result.run_id)]
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert set(meta) == CLIP_KEYS and meta["steps"].value == 2
    assert any(f"{selection}: seeds 1/1" in line for line in lines)  # rank 0's log via Pipes
    assert store.exists(f"clip_checkpoints/selection={selection}/seed=0", "config.json")
    rows = lineage.query("SELECT selection, seed FROM checkpoints").to_pylist()
    assert rows == [{"selection": selection, "seed": 0}]  # rank 0 alone wrote lineage
