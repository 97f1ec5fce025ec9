"""Typed evaluation records: one metric of one checkpoint (selection x seed) on one benchmark."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from rs_pipeline.core.records import EVAL_SCHEMA


@dataclass(frozen=True)
class EvalResult:
    """One number in the report, with everything needed to trace it back."""

    selection: str  # `<scorer_version>@<percent>` or `all@100`
    scorer: str  # readable scorer name (`clip-head`), `all` for the identity selection
    percent: float  # share of the pool kept, 100 for `all@100`
    seed: int
    benchmark: str
    metric: str  # top1, top5, t2i_R@1 ... i2t_R@10, mean_recall
    value: float
    n_images: int  # evaluated, after decontamination
    excluded: int  # evaluation images dropped because training saw them
    checkpoint: str  # URL of the safetensors folder that produced it

    def row(self) -> dict:
        """As a plain mapping (Arrow/JSON)."""
        return asdict(self)


def results_table(results: list[EvalResult]) -> pa.Table:
    """Arrow table of results (for Parquet and the lineage `eval_results` table)."""
    return pa.Table.from_pylist([r.row() for r in results], schema=EVAL_SCHEMA)
