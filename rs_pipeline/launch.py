"""Launch materializations from Python (the CLI's `run` and `demo`), on the local Dagster instance.

The order is the asset graph's own, not restated here: its assets upstream first, cut into
phases by the partition dimension a launch loops over (`PHASES`): each batch's assets (one run
per batch), then per scorer version its model, its scores of every batch and its subsets, then
each selection's fine-tune, then the unpartitioned report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import dagster as dg

from rs_pipeline.core.config import PipelineConfig, load_config
from rs_pipeline.core.finetune.stage import trains_clip
from rs_pipeline.core.names import ALL_SELECTION, check_batch_key, selection_name
from rs_pipeline.core.scoring.versions import versions
from rs_pipeline.core.vlm.bon_stage import runs_bon
from rs_pipeline.core.vlm.rl_stage import runs_rl
from rs_pipeline.core.vlm.stage import trains_vlm
from rs_pipeline.defs.graph import ASSETS, BATCH_ASSETS, toposorted
from rs_pipeline.defs.partitions import batch_partitions, scorer_partitions, selection_partitions
from rs_pipeline.defs.resources import build_resources
from rs_pipeline.defs.run_hygiene import fail_dead_runs, launch_tags


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
            shown = {k: v for k, v in md.items() if _terminal_sized(v)}
            lines.append(f"  {asset}: {shown}")
        lines += [
            f"artifacts:  {self.artifact_root}",
            f"lineage:    {self.lineage_db}",
            f"counts:     rs-pipeline lineage --batch {self.batch}",
            "UI:         make dev  (then open http://127.0.0.1:3000)",
        ]
        return "\n".join(lines)


def _terminal_sized(value) -> bool:
    """Whether a metadata value reads on one terminal line: numbers, flags and short text, not
    the previews (Markdown tables, embedded PNGs, record lists) that the UI renders."""
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and len(value) <= 120 and "\n" not in value


def _dimensions(parts: dg.PartitionsDefinition | None) -> list[str]:
    """The partition dimensions of an asset: none, one (a dynamic set's name) or several."""
    if parts is None:
        return []
    if isinstance(parts, dg.MultiPartitionsDefinition):
        return list(parts.partition_dimension_names)
    if isinstance(parts, dg.DynamicPartitionsDefinition):
        return [parts.name]
    raise TypeError(f"launch loops over dynamic partitions only, not {parts!r}")


def phases(assets: Sequence[dg.AssetsDefinition]) -> dict[str | None, list[dg.AssetsDefinition]]:
    """`assets` upstream first, by the partition dimension a launch loops over (None: none).

    An asset on one dimension (or on none) belongs to that dimension's phase; one on several
    (pair_scores: scorer_version x batch) joins the phase of the asset before it, which must be
    one of them. Each phase is one stretch of the order, so the dict's order is the launch order.
    """
    out: dict[str | None, list[dg.AssetsDefinition]] = {}
    current: str | None = None
    for asset in toposorted(assets):
        dims, name = _dimensions(asset.partitions_def), asset.key.to_user_string()
        if len(dims) > 1 and current not in dims:
            raise ValueError(f"{name} is partitioned by {dims}: it cannot follow {current!r}")
        phase = current if len(dims) > 1 else next(iter(dims), None)
        if phase in out and phase != current:
            raise ValueError(f"{name} comes back to the {phase!r} phase after {current!r}")
        out.setdefault(phase, []).append(asset)
        current = phase
    return out


PHASES = phases(ASSETS)


def _instance() -> dg.DagsterInstance:
    # With DAGSTER_HOME set (the Makefile sets it) runs land where `dagster dev` sees them.
    return (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )


def _metadata(result, suffix: str = "") -> dict[str, dict]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        out[mat.asset_key.to_user_string() + suffix] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    return out


@dataclass(frozen=True)
class Step:
    """One materialization that finished: what, which partition, `done` of `total`, how long."""

    stage: str
    partition: str | None
    done: int
    total: int
    success: bool
    seconds: float


# Dagster's console logger at WARNING: no DEBUG/INFO event stream, step errors still shown.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Watch:
    """How a launch reports: `on_step` after each materialization (counted against `total`),
    and `run_config` for every run (e.g. `QUIET_RUN_CONFIG`). The default reports nothing."""

    on_step: Callable[[Step], None] | None = None
    run_config: dict | None = None
    total: int = 0
    done: int = 0

    def finished(self, assets, partition_key, success: bool, seconds: float) -> None:
        self.done += 1
        if self.on_step is not None:
            stage = ",".join(a.key.to_user_string() for a in assets)
            key = None if partition_key is None else str(partition_key)
            self.on_step(Step(stage, key, self.done, max(self.total, self.done), success, seconds))


@dataclass
class _Runs:
    """`dg.materialize` calls on one instance with one set of resources, and what they gave."""

    resources: dict
    instance: dg.DagsterInstance
    success: bool = True
    metadata: dict[str, dict] = field(default_factory=dict)
    watch: Watch = field(default_factory=Watch)

    def materialize(
        self, assets: Sequence[dg.AssetsDefinition], *, partition_key=None, suffix: str = ""
    ) -> None:
        extra = {"run_config": self.watch.run_config} if self.watch.run_config else {}
        start = time.monotonic()
        done = dg.materialize(
            assets,
            partition_key=partition_key,
            resources=self.resources,
            instance=self.instance,
            tags=launch_tags(),  # so a later launch can fail this run if the process dies
            **extra,
        )
        self.watch.finished(assets, partition_key, done.success, time.monotonic() - start)
        self.success &= done.success
        self.metadata |= _metadata(done, suffix)

    def result(self, cfg: PipelineConfig, *, batch: str) -> LaunchResult:
        return LaunchResult(
            success=self.success,
            batch=batch,
            artifact_root=cfg.storage.root,
            lineage_db=cfg.storage.lineage_db,
            metadata=self.metadata,
        )


def _runs(config: str, instance: dg.DagsterInstance | None, watch: Watch | None) -> _Runs:
    return _Runs(
        resources=build_resources(config), instance=instance or _instance(), watch=watch or Watch()
    )


def materialize_batch(
    config: str, batch: str, instance: dg.DagsterInstance | None = None, watch: Watch | None = None
) -> LaunchResult:
    """Register `batch` and materialize every batch-partitioned asset for it, in one run."""
    check_batch_key(batch)
    cfg = load_config(config)
    runs = _runs(config, instance, watch)
    fail_dead_runs(runs.instance)
    runs.instance.add_dynamic_partitions(batch_partitions.name, [batch])
    runs.materialize(BATCH_ASSETS, partition_key=batch)
    return runs.result(cfg, batch=batch)


def _version_keys(asset: dg.AssetsDefinition, version: str, batches: list[str]) -> list[tuple]:
    """(partition key, metadata suffix) of `asset` under `version`: once, or once per batch."""
    if not isinstance(asset.partitions_def, dg.MultiPartitionsDefinition):
        return [(version, f"[{version}]")]
    return [
        (
            dg.MultiPartitionKey({scorer_partitions.name: version, batch_partitions.name: b}),
            f"[{version}|{b}]",
        )
        for b in batches
    ]


def materialize_scorers(
    config: str,
    batches: list[str],
    instance: dg.DagsterInstance | None = None,
    watch: Watch | None = None,
) -> LaunchResult:
    """Train/register every scorer version, score each batch with it, then select subsets."""
    cfg = load_config(config)
    runs = _runs(config, instance, watch)
    fail_dead_runs(runs.instance)
    for version in versions(cfg.scoring):
        runs.instance.add_dynamic_partitions(scorer_partitions.name, [version])
        for asset in PHASES[scorer_partitions.name]:
            for key, suffix in _version_keys(asset, version, batches):
                runs.materialize([asset], partition_key=key, suffix=suffix)
    return runs.result(cfg, batch=",".join(batches))


def selections_of(cfg: PipelineConfig) -> list[str]:
    """Every selection of the configuration: each scorer x ratio, then `all@100`."""
    names = [selection_name(v, r) for v in versions(cfg.scoring) for r in cfg.selection.ratios]
    return names + [ALL_SELECTION]


# Which selections each selection-partitioned asset trains on (CLIP: every selection; the VLM:
# `vlm.ratios`, the paper's top 60%), from the core stage that decides it.
TRAINS_ON: dict[str, Callable[[PipelineConfig, str], bool]] = {
    "clip_checkpoints": trains_clip,
    "vlm_checkpoints": trains_vlm,
    "bon_eval": runs_bon,
    "vlm_rl_checkpoints": runs_rl,
}


def materialize_evaluation(
    config: str, instance: dg.DagsterInstance | None = None, watch: Watch | None = None
) -> LaunchResult:
    """Fine-tune CLIP (and the VLM, with its best-of-N) on every configured selection, then
    write the evaluation report.

    Selection partitions are registered by curated_subsets: run `materialize_scorers` first.
    """
    cfg = load_config(config)
    runs = _runs(config, instance, watch)
    fail_dead_runs(runs.instance)
    for name in selections_of(cfg):
        for asset in PHASES[selection_partitions.name]:
            if TRAINS_ON[asset.key.to_user_string()](cfg, name):
                runs.materialize([asset], partition_key=name, suffix=f"[{name}]")
    if runs.success:
        runs.materialize(PHASES[None])
    return runs.result(cfg, batch="")


def step_count(cfg: PipelineConfig, batches: list[str]) -> int:
    """How many materializations run_all makes when every one succeeds (its progress total)."""
    per_version = sum(len(_version_keys(a, "v", batches)) for a in PHASES[scorer_partitions.name])
    fine_tunes = sum(
        TRAINS_ON[a.key.to_user_string()](cfg, name)
        for name in selections_of(cfg)
        for a in PHASES[selection_partitions.name]
    )
    report = 1 if PHASES[None] else 0
    return len(batches) + len(versions(cfg.scoring)) * per_version + fine_tunes + report


def _launches(
    config: str, batches: list[str], instance: dg.DagsterInstance, watch: Watch
) -> list[tuple[Callable[[], LaunchResult], str]]:
    """run_all's launches (with their metadata suffixes), in the order of the phases."""
    by_phase = {
        batch_partitions.name: [
            (partial(materialize_batch, config, b, instance, watch), f"[{b}]") for b in batches
        ],
        scorer_partitions.name: [
            (partial(materialize_scorers, config, batches, instance, watch), "")
        ],
        selection_partitions.name: [(partial(materialize_evaluation, config, instance, watch), "")],
        None: [],  # materialize_evaluation's last run, once every fine-tune has succeeded
    }
    return [launch for phase in PHASES for launch in by_phase[phase]]


def run_all(
    config: str,
    batches: list[str],
    instance: dg.DagsterInstance | None = None,
    watch: Watch | None = None,
) -> LaunchResult:
    """The whole graph, in order: every batch, every scorer version, fine-tunes, the report.

    Stops at the first failing launch: later ones would only fail on missing inputs. `watch`
    hears of each materialization as it finishes (its `total` is set here) and may quiet the
    runs' console logs.
    """
    cfg, instance = load_config(config), instance or _instance()
    fail_dead_runs(instance)
    watch = watch or Watch()
    watch.total = step_count(cfg, batches)
    result = LaunchResult(
        success=True,
        batch=",".join(batches),
        artifact_root=cfg.storage.root,
        lineage_db=cfg.storage.lineage_db,
    )
    for launch, suffix in _launches(config, batches, instance, watch):
        done = launch()
        result.metadata |= {k + suffix: v for k, v in done.metadata.items()}
        if not done.success:
            result.success = False
            break
    return result
