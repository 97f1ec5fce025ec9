"""The scorer registry sensor: a new checkpoint becomes a `scorer_version` and is backfilled.

It adds the version's partition and requests `score_model` for it (registering the checkpoint
and measuring it on the held-out pairs). Once that lands, the automation conditions in
`conditions.py` request pair_scores for the version over every batch (a backfill: with the
multi-run policy, a few runs), then curated_subsets, the fine-tunes and the report. The cursor
lists the versions already triggered, so each triggers once.
"""

from __future__ import annotations

import json

import dagster as dg

from rs_pipeline.core.scoring.registry import scan_registry
from rs_pipeline.core.scoring.versions import scorer_version
from rs_pipeline.defs.automation.schedules import TRIGGER_TAG
from rs_pipeline.defs.partitions import scorer_partitions
from rs_pipeline.defs.resources import PipelineSettings

PAIRS, MODEL = dg.AssetKey("preference_pairs"), dg.AssetKey("score_model")


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
