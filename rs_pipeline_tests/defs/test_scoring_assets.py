"""score_model and pair_scores through Dagster on the tiny preset, and the GPU declaration."""

import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.config import load_config
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.definitions import build_definitions
from rs_pipeline.defs.gpu import GPU_OP_TAGS, GPU_POOL
from rs_pipeline.launch import materialize_batch, materialize_scorers


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
    gpu_assets = {"score_model", "pair_scores", "clip_checkpoints"}
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
