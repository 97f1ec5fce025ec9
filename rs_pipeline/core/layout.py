"""Artifact folders that stages on different floors of `core` share.

`pair_scores` (scoring) writes what `curated_subsets` (selection) reads; the folder lives here,
below both, so selection never imports the scoring package (which builds on training, which
builds on selection).
"""

from __future__ import annotations

from rs_pipeline.core.ingest.stage import check_batch_key

SCORES_ASSET = "pair_scores"


def scores_dir(version: str, batch: str) -> str:
    """Folder of one (scorer_version, batch) partition under the artifact root."""
    return f"{SCORES_ASSET}/version={version}/batch={check_batch_key(batch)}"
