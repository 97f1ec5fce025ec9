"""Nightly re-curation: register the night's drops as batches and ingest them, on a cron.

A sensor rather than a `@schedule`: in Dagster 1.13 a schedule may return only RunRequests or a
SkipReason, not `dynamic_partitions_requests`, and a new batch is a new dynamic partition. The
sensor ticks every `automation.sensor_interval_s` but acts only once per `automation.nightly_cron`
tick; the cursor holds the last cron tick it handled. If no complete drop has landed by the cron
tick it keeps looking until one does (a late upload is picked up within one interval), then waits
for the next cron tick. Its run ingests, captions and pairs the new batch in one run; the rest of
the chain (scores under the current version, subsets, fine-tunes, report) follows through the
automation conditions in `conditions.py`.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

# Dagster's own cron arithmetic (time zones, DST); there is no public helper for "latest tick".
from dagster._utils.schedules import get_latest_completed_cron_tick

from rs_pipeline.core.landing import scan_landing
from rs_pipeline.defs.partitions import batch_partitions
from rs_pipeline.defs.resources import PipelineSettings

BATCH_KEYS = [dg.AssetKey(k) for k in ("rs_images", "caption_candidates", "preference_pairs")]
TRIGGER_TAG = "rs_pipeline/trigger"


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
