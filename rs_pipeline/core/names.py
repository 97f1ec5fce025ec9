"""Keys and names that become folder names and partition keys: batches and selections.

The base floor of `core`: every stage, the Dagster layer and the CLI read these rules from
here, so a batch key or a selection name means the same thing everywhere.
"""

from __future__ import annotations

import re

ALL_SELECTION = "all@100"  # the identity selection: every pair of the pool
# Results of a selection's RL (GRPO) checkpoints carry its name with this suffix, so the report
# shows SFT and SFT+RL as two rows of one scorer and percent.
RL_SUFFIX = "+rl"

_BATCH_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_batch_key(batch: str) -> str:
    """Batch keys become folder names: letters, digits, '.', '_', '-' only."""
    if not _BATCH_KEY.match(batch):
        raise ValueError(
            f"batch key {batch!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-' "
            "(e.g. a date such as 2026-11-28)"
        )
    return batch


def selection_name(scorer_version: str, percent: float) -> str:
    """`clip-head-3f9a1c@30`; percents print without a trailing `.0`."""
    return f"{scorer_version}@{percent:g}"


def rl_selection(selection: str) -> str:
    """`clip-head-3f9a1c@30+rl`: the name the RL checkpoints' results of a selection carry."""
    return selection + RL_SUFFIX


def parse_selection(name: str) -> tuple[str, str, float]:
    """`clip-head-3f9a1c@30` -> (scorer_version, scorer name, percent); `all@100` -> all.

    An RL name (`...@30+rl`, `all@100+rl`) parses as the selection it was trained on.
    """
    base = name.removesuffix(RL_SUFFIX)
    version, sep, pct = base.rpartition("@")
    if not sep or not version:
        raise ValueError(f"selection {name!r} is not `<scorer_version>@<percent>` or `all@100`")
    if base == ALL_SELECTION:
        return "all", "all", 100.0
    scorer = version.rsplit("-", 1)[0] if "-" in version else version
    return version, scorer, float(pct)
