"""The two sensors that start the automation chain: nightly landing drops, scorer checkpoints.

`nightly_landing` registers the night's drops as batches and ingests them, on a cron. A sensor
rather than a `@schedule`: in Dagster 1.13 a schedule may return only RunRequests or a
SkipReason, not `dynamic_partitions_requests`, and a new batch is a new dynamic partition. The
sensor ticks every `automation.sensor_interval_s` but acts only once per `automation.nightly_cron`
tick; the cursor holds the last cron tick it handled. If no complete drop has landed by the cron
tick it keeps looking until one does (a late upload is picked up within one interval), then waits
for the next cron tick. Its run ingests, captions and pairs the new batch in one run; the rest of
the chain (scores under the current version, subsets, fine-tunes, report) follows through the
automation conditions in `conditions.py`.

`scorer_registry` turns a new checkpoint into a `scorer_version` and backfills it. It adds the
version's partition and requests `score_model` for it (registering the checkpoint and measuring
it on the held-out pairs). Once that lands, the automation conditions request pair_scores for
the version over every batch (a backfill: with the multi-run policy, a few runs), then
curated_subsets, the fine-tunes and the report. The cursor lists the versions already
triggered, so each triggers once.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

# Dagster's own cron arithmetic (time zones, DST); there is no public helper for "latest tick".
from dagster._utils.schedules import get_latest_completed_cron_tick

from rs_pipeline.core.landing import scan_landing
from rs_pipeline.core.scoring.registry import scan_registry
from rs_pipeline.core.scoring.versions import scorer_version
from rs_pipeline.defs.graph import BATCH_KEYS
from rs_pipeline.defs.partitions import batch_partitions, scorer_partitions
from rs_pipeline.defs.resources import PipelineSettings

TRIGGER_TAG = "rs_pipeline/trigger"
PAIRS, MODEL = dg.AssetKey("preference_pairs"), dg.AssetKey("score_model")


def latest_cron_tick(cron: str, now: dt.datetime) -> float:
    """Timestamp of the latest `cron` tick at or before `now` (UTC)."""
    return get_latest_completed_cron_tick(cron, now, "UTC").timestamp()


def nightly_sensor(cron: str, interval_s: int) -> dg.SensorDefinition:
    """The nightly landing sensor for one configuration's cron and interval."""

    @dg.sensor(
        name="nightly_landing",
        target=dg.AssetSelection.assets(*BATCH_KEYS),
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"registers complete drops under automation.landing after each `{cron}` tick",
    )
    def nightly_landing(context: dg.SensorEvaluationContext, settings: PipelineSettings):
        cfg = settings.load()
        if not cfg.automation.landing:
            return dg.SkipReason("automation.landing is not set: nothing to watch")
        tick = latest_cron_tick(cron, dt.datetime.now(dt.UTC))
        if context.cursor and float(context.cursor) >= tick:
            return dg.SkipReason(f"this `{cron}` tick is handled; waiting for the next")
        registered = context.instance.get_dynamic_partitions(batch_partitions.name)
        scan = scan_landing(cfg.automation.landing, registered, cfg.storage.storage_options)
        if scan.incomplete or scan.invalid:
            context.log.info(f"left alone: incomplete {scan.incomplete}, invalid {scan.invalid}")
        if not scan.new:
            return dg.SkipReason(f"no new complete drop under {cfg.automation.landing}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"batch:{b}",
                    asset_selection=BATCH_KEYS,
                    partition_key=b,
                    tags={TRIGGER_TAG: "nightly"},
                )
                for b in scan.new
            ],
            dynamic_partitions_requests=[batch_partitions.build_add_request(scan.new)],
            cursor=str(tick),
        )

    return nightly_landing


def registry_sensor(interval_s: int) -> dg.SensorDefinition:
    """The registry sensor, ticking every `interval_s` seconds."""

    @dg.sensor(
        name="scorer_registry",
        target=dg.AssetSelection.assets(MODEL),
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="adds a scorer_version per new checkpoint under automation.registry",
    )
    def scorer_registry(context: dg.SensorEvaluationContext, settings: PipelineSettings):
        cfg = settings.load()
        if not cfg.automation.registry:
            return dg.SkipReason("automation.registry is not set: nothing to watch")
        # score_model measures a checkpoint on held-out pairs: wait for a first batch of them.
        if not context.instance.get_materialized_partitions(PAIRS):
            return dg.SkipReason("no batch has preference_pairs yet; score_model needs them")
        scan = scan_registry(
            cfg.automation.registry, cfg.storage.work_dir, cfg.storage.storage_options
        )
        for name, reason in scan.skipped.items():
            context.log.info(f"registry folder {name!r} skipped: {reason}")
        seen = set(json.loads(context.cursor or "[]"))
        known = seen | set(context.instance.get_dynamic_partitions(scorer_partitions.name))
        new = sorted({scorer_version(s) for s in scan.specs} - known)
        if not new:
            return dg.SkipReason("no new checkpoint in the registry")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"scorer:{v}",
                    asset_selection=[MODEL],
                    partition_key=v,
                    tags={TRIGGER_TAG: "registry"},
                )
                for v in new
            ],
            dynamic_partitions_requests=[scorer_partitions.build_add_request(new)],
            cursor=json.dumps(sorted(seen | set(new))),
        )

    return scorer_registry
