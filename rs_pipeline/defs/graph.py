"""Every asset of the code location, listed once, and the views taken of their graph.

`ASSETS` is the one list (`definitions.py` builds the code location from it); the batch assets
(the nightly sensor's target, `materialize_batch`) and the launch order are derived from it.
"""

from __future__ import annotations

import graphlib
from collections.abc import Sequence

import dagster as dg

from rs_pipeline.defs.captions.assets import caption_candidates
from rs_pipeline.defs.evaluation.assets import evaluation_report
from rs_pipeline.defs.finetune.assets import clip_checkpoints
from rs_pipeline.defs.ingest.assets import rs_images
from rs_pipeline.defs.pairs.assets import preference_pairs
from rs_pipeline.defs.partitions import batch_partitions
from rs_pipeline.defs.scoring.assets import pair_scores, score_model
from rs_pipeline.defs.selection.assets import curated_subsets
from rs_pipeline.defs.vlm.assets import bon_eval, vlm_checkpoints, vlm_rl_checkpoints

ASSETS = [
    rs_images,
    caption_candidates,
    preference_pairs,
    score_model,
    pair_scores,
    curated_subsets,
    clip_checkpoints,
    vlm_checkpoints,
    bon_eval,
    vlm_rl_checkpoints,
    evaluation_report,
]


def toposorted(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets`, upstream first, level by level (each after every asset it reads), by key within
    a level: the order of Dagster's own asset graph (its `toposorted_asset_keys`)."""
    by_key = {key: a for a in assets for key in a.keys}
    sorter = graphlib.TopologicalSorter(
        {
            key: {dep.asset_key for dep in a.specs_by_key[key].deps if dep.asset_key in by_key}
            for key, a in by_key.items()
        }
    )
    sorter.prepare()
    order: list[dg.AssetKey] = []
    while sorter.is_active():
        level = sorted(sorter.get_ready())
        order += level
        sorter.done(*level)
    return list(dict.fromkeys(by_key[k] for k in order))  # a multi-asset once, at its first key


# The assets partitioned by batch alone: one run ingests, captions and pairs a new batch.
BATCH_ASSETS = [a for a in toposorted(ASSETS) if a.partitions_def == batch_partitions]
BATCH_KEYS = [a.key for a in BATCH_ASSETS]
