"""Declarative automation: after a new batch or a new scorer version, what runs next.

The nightly and registry sensors start a chain; these conditions finish it, one step per run
(assets on different partition sets cannot share a run):

    batch assets[b] -> pair_scores[(current, b)] -> curated_subsets[current]
        -> clip_checkpoints[current@p, all@100] -> evaluation_report
    score_model[v] -> pair_scores[(v, every batch)] -> curated_subsets[v]
        -> clip_checkpoints[v@p (new), all@100] -> evaluation_report

Plain `eager()` would over-request: a new batch would be scored by every scorer version, and
any curated_subsets update would retrain every selection (clip_checkpoints reads all of
curated_subsets), so pair_scores and clip_checkpoints are restricted to the current scorer
version, except for partitions that are new (a new version's backfill, a new selection).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from rs_pipeline.core.config import load_config
from rs_pipeline.core.names import ALL_SELECTION
from rs_pipeline.core.scoring.versions import current_version

AC = dg.AutomationCondition


class InCurrentScorerVersion(dg.AutomationCondition):
    """Partitions of the current scorer version: `(current, batch)`, `current@p`, `all@100`."""

    def __init__(self, config: str) -> None:
        self.config = config  # a preset name or YAML path, read at each evaluation

    @property
    def name(self) -> str:
        return "in_current_scorer_version"

    @property
    def description(self) -> str:
        return "partition belongs to scoring.current's version (or is all@100)"

    def evaluate(self, context):  # (AutomationContext) -> AutomationResult
        current = current_version(load_config(self.config))
        keys = context.candidate_subset.expensively_compute_partition_keys()
        mine = {k for k in keys if _version_of(k) == current or k == ALL_SELECTION}
        true = context.candidate_subset.compute_intersection_with_partition_keys(mine)
        return dg.AutomationResult(context=context, true_subset=true)


def _version_of(key: str) -> str:
    """The scorer version a pair_scores or selection key belongs to."""
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension["scorer_version"]
    if "|" in key:  # `batch|scorer_version`: dimensions are ordered by name
        return key.split("|")[1]
    return key.split("@")[0]


def _ready() -> dg.AutomationCondition:
    return ~AC.any_deps_in_progress() & ~AC.in_progress()


def pair_scores_condition(config: str) -> dg.AutomationCondition:
    """New batches under the current version; every batch under a newly materialized version."""
    model_updated = AC.any_deps_match(AC.newly_updated()).allow(
        dg.AssetSelection.assets("score_model")
    )
    return AC.eager() & (InCurrentScorerVersion(config) | model_updated.since_last_handled())


def clip_checkpoints_condition(config: str) -> dg.AutomationCondition:
    """New selections once; the current version's selections (and all@100) when re-curated."""
    current = InCurrentScorerVersion(config)
    # Only a re-curation of the current version (the nightly) refreshes existing selections.
    recurated = AC.any_deps_match(AC.newly_updated() & current).allow(
        dg.AssetSelection.assets("curated_subsets")
    )
    refresh = recurated.since_last_handled() & current
    return (AC.newly_missing().since_last_handled() | refresh) & _ready()


def evaluation_report_condition() -> dg.AutomationCondition:
    """Once every checkpoint of a round has landed (new pair_scores alone do not trigger it)."""
    trained = AC.any_deps_match(AC.newly_updated()).allow(
        dg.AssetSelection.assets("clip_checkpoints")
    )
    return trained.since_last_handled() & _ready()


def conditions(config: str) -> dict[str, dg.AutomationCondition]:
    """The automation condition of every automated asset, by asset key."""
    return {
        "pair_scores": pair_scores_condition(config),
        "curated_subsets": AC.eager(),
        "clip_checkpoints": clip_checkpoints_condition(config),
        "evaluation_report": evaluation_report_condition(),
    }


def automate(assets: Sequence[dg.AssetsDefinition], config: str) -> list[dg.AssetsDefinition]:
    """`assets` with their automation conditions (those absent from `assets` are ignored)."""
    by_key = {dg.AssetKey(k): c for k, c in conditions(config).items()}
    return [
        a.with_attributes(automation_condition={k: by_key[k] for k in a.keys if k in by_key})
        if any(k in by_key for k in a.keys)
        else a
        for a in assets
    ]


def automation_sensor(interval_s: int) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the conditions above; in the code server, which custom conditions need."""
    return dg.AutomationConditionSensorDefinition(
        "rs_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_s,
        use_user_code_server=True,
    )
