"""Launch materializations from Python (the CLI's `demo`), on the local Dagster instance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from rs_pipeline.core.config import load_config
from rs_pipeline.core.ingest.stage import check_batch_key
from rs_pipeline.definitions import ASSETS
from rs_pipeline.defs.partitions import batch_partitions
from rs_pipeline.defs.resources import build_resources


@dataclass
class LaunchResult:
    """What one launch materialized and where its outputs are."""

    success: bool
    batch: str
    artifact_root: str
    lineage_db: str
    metadata: dict[str, dict] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human summary for the terminal."""
        lines = [f"batch {self.batch}: {'succeeded' if self.success else 'FAILED'}"]
        for asset, md in self.metadata.items():
            shown = {k: v for k, v in md.items() if not isinstance(v, dict | list)}
            lines.append(f"  {asset}: {shown}")
        lines += [
            f"artifacts:  {self.artifact_root}",
            f"lineage:    {self.lineage_db}",
            f"counts:     rs-pipeline lineage --batch {self.batch}",
            "UI:         make dev  (then open http://127.0.0.1:3000)",
        ]
        return "\n".join(lines)


def _instance() -> dg.DagsterInstance:
    # With DAGSTER_HOME set (the Makefile sets it) runs land where `dagster dev` sees them.
    return (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )


def materialize_batch(config: str, batch: str, instance: dg.DagsterInstance | None = None):
    """Register `batch` and materialize every batch-partitioned asset for it."""
    check_batch_key(batch)
    cfg = load_config(config)
    instance = instance or _instance()
    instance.add_dynamic_partitions(batch_partitions.name, [batch])
    result = dg.materialize(
        ASSETS, partition_key=batch, resources=build_resources(config), instance=instance
    )
    metadata = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        metadata[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    return LaunchResult(result.success, batch, cfg.storage.root, cfg.storage.lineage_db, metadata)
