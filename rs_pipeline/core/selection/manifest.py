"""A selection's training pairs, by name: `<scorer_version>@<percent>` or `all@100`.

The identity selection `all@100` is every ok caption candidate of every ingested batch: the
uncurated pool the curated selections are cut from, so the comparison is like for like.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.layout import CAPTIONS_ASSET, CAPTIONS_FILE, captioned_batches, captions_dir
from rs_pipeline.core.names import ALL_SELECTION, parse_selection
from rs_pipeline.core.records import SELECTION_SCHEMA

ALL_REASON = "identity selection: every ok caption candidate of every batch"


@dataclass(frozen=True)
class SelectionManifest:
    """The rows of one selection (SELECTION_SCHEMA) and a digest of what they contain."""

    name: str
    table: pa.Table

    @property
    def digest(self) -> str:
        """sha256 of the sorted caption ids: equal digests mean equal training sets."""
        ids = sorted(self.table.column("caption_id").to_pylist())
        return hashlib.sha256("\n".join(ids).encode()).hexdigest()

    @property
    def batches(self) -> list[str]:
        """Batches the selection draws from, sorted."""
        return sorted(set(self.table.column("batch").to_pylist()))

    def __len__(self) -> int:
        return self.table.num_rows


def _all_pairs(store: ArtifactStore) -> pa.Table:
    rows = []
    for batch in captioned_batches(store):
        for c in store.read_table(captions_dir(batch), CAPTIONS_FILE).to_pylist():
            if c["status"] == "ok":
                rows.append(
                    {
                        "selection": ALL_SELECTION,
                        "scorer_version": "all",
                        "batch": batch,
                        "sample_id": c["sample_id"],
                        "caption_id": c["caption_id"],
                        "text": c["text"],
                        "score": None,
                        "rank": None,
                        "reason": ALL_REASON,
                    }
                )
    return pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA)


def load_selection(store: ArtifactStore, name: str) -> SelectionManifest:
    """The named selection's rows; fails saying which asset to materialize when it is missing."""
    if name == ALL_SELECTION:
        table = _all_pairs(store)
        if not table.num_rows:
            raise FileNotFoundError(
                f"no caption_candidates under {store.url(CAPTIONS_ASSET)}: "
                "materialize rs_images and caption_candidates for at least one batch first"
            )
        return SelectionManifest(name, table)
    version, _, _ = parse_selection(name)
    parts = (f"curated_subsets/version={version}", f"{name}.parquet")
    if not store.exists(*parts):
        raise FileNotFoundError(
            f"selection {name!r} not found at {store.url(*parts)}: materialize curated_subsets "
            f"for scorer_version {version!r} (with this percent in selection.ratios) first"
        )
    return SelectionManifest(name, store.read_table(*parts))
