"""score_model and pair_scores through Dagster on the tiny preset, and the GPU declaration."""

import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.scoring.apply import run_pair_scores, scores_partition_key
from rs_pipeline.core.scoring.stage import run_score_model
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.definitions import build_definitions
from rs_pipeline.defs.gpu import GPU_OP_TAGS, GPU_POOL
from rs_pipeline.defs.partitions import scores_partitions
from rs_pipeline.launch import materialize_batch, materialize_scorers
from rs_pipeline_tests.core.pairs.test_stage import engine
from rs_pipeline_tests.factories import write_config


@pytest.mark.slow
def test_every_scorer_version_trains_and_scores_the_batch(tiny_config):
    with dg.instance_for_test() as instance:
        assert materialize_batch(tiny_config, "b1", instance=instance).success
        result = materialize_scorers(tiny_config, ["b1"], instance=instance)
    assert result.success
    cfg = load_config(tiny_config)
    captions = pq.read_table(f"{cfg.storage.root}/caption_candidates/batch=b1/captions.parquet")
    n_ok = sum(s == "ok" for s in captions.column("status").to_pylist())
    lineage = LineageStore(cfg.storage.lineage_db)
    for version, spec in versions(cfg.scoring).items():
        md = result.metadata[f"score_model[{version}]"]
        assert md["backend"] == spec.backend and 0.0 <= md["val_pairwise_accuracy"] <= 1.0
        scored = result.metadata[f"pair_scores[{version}|b1]"]
        assert scored["pairs"] == n_ok  # every ok candidate gets exactly one score
        rows = lineage.query(
            "SELECT count(*) AS n FROM scores WHERE scorer_version = ? AND batch = 'b1'", [version]
        ).column("n")[0]
        assert rows.as_py() == n_ok
        subsets = result.metadata[f"curated_subsets[{version}]"]
        assert subsets["kept_by_selection"] == {f"{version}@30": -(-n_ok * 30 // 100)}


def test_gpu_assets_share_one_declaration_of_pool_and_k8s_tags():
    graph = build_definitions("tiny").resolve_asset_graph()
    gpu_assets = {
        "score_model",
        "pair_scores",
        "clip_checkpoints",
        "vlm_checkpoints",
        "bon_eval",
        "vlm_rl_checkpoints",
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        tags = node.assets_def.op.tags
        if key.to_user_string() in gpu_assets:
            assert node.pools == {GPU_POOL}
            k8s = json.loads(tags["dagster-k8s/config"])  # op tags are stored as JSON text
            assert k8s == GPU_OP_TAGS["dagster-k8s/config"]
            resources = k8s["container_config"]["resources"]
            assert resources["limits"]["nvidia.com/gpu"] == "1"
        else:
            assert "dagster-k8s/config" not in tags


def test_scores_lineage_rows_carry_dagsters_partition_key(tmp_path):
    config = write_config(
        tmp_path,
        scoring={"scorers": [{"name": "coin", "backend": "random"}], "current": "coin"},
        sources=[{"kind": "synthrs", "name": "synthrs", "count": 8, "size": 64, "seed": 3}],
    )
    store, lineage, *_ = engine(config)
    cfg = load_config(config)
    (version,) = versions(cfg.scoring)
    run_score_model(cfg, version, store, log=lambda _: None)
    run_pair_scores(cfg, version, "b1", store, lineage, "r1")
    dagster_key = str(dg.MultiPartitionKey({"batch": "b1", "scorer_version": version}))
    assert scores_partition_key(version=version, batch="b1") == dagster_key
    stored = lineage.query("SELECT DISTINCT partition_key FROM scores").column(0).to_pylist()
    writes = lineage.query("SELECT partition_key FROM writes WHERE table_name = 'scores'")
    written = writes.column(0).to_pylist()
    assert stored == written == [dagster_key]
    dims = scores_partitions.get_partition_key_from_str(stored[0]).keys_by_dimension
    assert dims == {"batch": "b1", "scorer_version": version}
