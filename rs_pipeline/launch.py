"""Launch materializations from Python (the CLI's `demo`), on the local Dagster instance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from rs_pipeline.core.config import PipelineConfig, load_config
from rs_pipeline.core.evaluation.results import ALL_SELECTION
from rs_pipeline.core.ingest.stage import check_batch_key
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.core.selection.topk import selection_name
from rs_pipeline.definitions import BATCH_ASSETS
from rs_pipeline.defs.evaluation.assets import evaluation_report
from rs_pipeline.defs.finetune.assets import clip_checkpoints
from rs_pipeline.defs.partitions import batch_partitions, scorer_partitions
from rs_pipeline.defs.resources import build_resources
from rs_pipeline.defs.scoring.assets import pair_scores, score_model
from rs_pipeline.defs.selection.assets import curated_subsets


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
        BATCH_ASSETS, partition_key=batch, resources=build_resources(config), instance=instance
    )
    return LaunchResult(
        result.success, batch, cfg.storage.root, cfg.storage.lineage_db, _metadata(result)
    )


def _metadata(result, suffix: str = "") -> dict[str, dict]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        out[mat.asset_key.to_user_string() + suffix] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    return out


def materialize_scorers(
    config: str, batches: list[str], instance: dg.DagsterInstance | None = None
) -> LaunchResult:
    """Train/register every scorer version, score each batch with it, then select subsets."""
    cfg = load_config(config)
    instance = instance or _instance()
    resources, metadata, success = build_resources(config), {}, True
    for version in versions(cfg.scoring):
        instance.add_dynamic_partitions(scorer_partitions.name, [version])
        done = dg.materialize(
            [score_model], partition_key=version, resources=resources, instance=instance
        )
        success &= done.success
        metadata |= _metadata(done, f"[{version}]")
        for batch in batches:
            key = dg.MultiPartitionKey({"scorer_version": version, "batch": batch})
            done = dg.materialize(
                [pair_scores], partition_key=key, resources=resources, instance=instance
            )
            success &= done.success
            metadata |= _metadata(done, f"[{version}|{batch}]")
        done = dg.materialize(
            [curated_subsets], partition_key=version, resources=resources, instance=instance
        )
        success &= done.success
        metadata |= _metadata(done, f"[{version}]")
    return LaunchResult(success, ",".join(batches), cfg.storage.root, cfg.storage.lineage_db,
                        metadata)  # fmt: skip


def selections_of(cfg: PipelineConfig) -> list[str]:
    """Every selection the configuration fine-tunes on: each scorer x ratio, then `all@100`."""
    names = [selection_name(v, r) for v in versions(cfg.scoring) for r in cfg.selection.ratios]
    return names + ([ALL_SELECTION] if cfg.finetune.include_all else [])


def materialize_evaluation(config: str, instance: dg.DagsterInstance | None = None) -> LaunchResult:
    """Fine-tune CLIP on every configured selection, then write the evaluation report.

    Selection partitions are registered by curated_subsets: run `materialize_scorers` first.
    """
    cfg = load_config(config)
    instance = instance or _instance()
    resources, metadata, success = build_resources(config), {}, True
    for name in selections_of(cfg):
        done = dg.materialize(
            [clip_checkpoints], partition_key=name, resources=resources, instance=instance
        )
        success &= done.success
        metadata |= _metadata(done, f"[{name}]")
    if success:
        done = dg.materialize([evaluation_report], resources=resources, instance=instance)
        success &= done.success
        metadata |= _metadata(done)
    return LaunchResult(success, "", cfg.storage.root, cfg.storage.lineage_db, metadata)


def run_all(
    config: str, batches: list[str], instance: dg.DagsterInstance | None = None
) -> LaunchResult:
    """The whole graph, in order: every batch, every scorer version, fine-tunes, the report.

    Stops at the first failing stage: later stages would only fail on missing inputs.
    """
    cfg, instance = load_config(config), instance or _instance()
    result = LaunchResult(True, ",".join(batches), cfg.storage.root, cfg.storage.lineage_db)
    stages = [(lambda b=b: materialize_batch(config, b, instance), f"[{b}]") for b in batches]
    stages += [(lambda: materialize_scorers(config, batches, instance), ""),
               (lambda: materialize_evaluation(config, instance), "")]  # fmt: skip
    for stage, suffix in stages:
        done = stage()
        result.metadata |= {k + suffix: v for k, v in done.metadata.items()}
        if not done.success:
            result.success = False
            break
    return result
