"""Backfills as a handful of runs: a shared policy, and bodies that loop over a run's partitions.

With `BackfillPolicy.multi_run(N)` a backfill over many batches (or a new scorer version over
every batch) is ceil(partitions / N) runs instead of one per partition; each run handles its
partitions one after another, since the lineage DuckDB file takes one writer at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dagster as dg

# Small enough that a failed run redoes little, large enough that 100 batches are 13 runs.
MAX_PARTITIONS_PER_RUN = 8
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)

T = TypeVar("T")


def each_partition(
    context: dg.AssetExecutionContext, fn: Callable[[str], T]
) -> list[tuple[str, T]]:
    """`fn(key)` for every partition this run materializes, serially, in key order."""
    out = []
    keys = list(context.partition_keys)
    for i, key in enumerate(keys, 1):
        context.log.info(f"partition {key} ({i}/{len(keys)})")
        out.append((key, fn(key)))
    return out


def _jsonable(value: Any) -> bool:
    return isinstance(value, int | float | str | bool | dict | list | None)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {k: _add(a.get(k, 0), b.get(k, 0)) for k in sorted(set(a) | set(b))}
    return a + b


def run_metadata(parts: Sequence[tuple[str, dict[str, Any]]], summed: Sequence[str]) -> dict:
    """One partition: its own metadata. Several: `summed` fields added up, plus per partition."""
    if len(parts) == 1:
        return parts[0][1]
    totals = {k: parts[0][1][k] for k in summed}
    for _, md in parts[1:]:
        totals = {k: _add(totals[k], md[k]) for k in summed}
    per_key = {key: {k: v for k, v in md.items() if _jsonable(v)} for key, md in parts}
    return {
        **totals,
        "partitions": len(parts),
        "by_partition": dg.MetadataValue.json(per_key),
    }
