"""Timing for benchmarks: A/B alternation, CPU seconds beside wall time, median ratios.

On a machine shared with other jobs, wall time swings far more than the CPU time a run gets,
so every figure keeps both.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Wall and CPU seconds of one timed section (`measured`)."""

    wall: float
    cpu: float


def alternate(
    runs: dict[str, Callable[[], float | Timing]], repeats: int
) -> dict[str, list[float]]:
    """Wall seconds of each callable per repeat, A/B order flipped every repeat (drift cancels).

    CPU seconds of the same runs (this process and its finished children) are kept in
    `CPU[name]`: on a machine shared with other jobs they move less than wall time does. A
    callable that returns a `Timing` (from `measured`) gives both for its timed section only,
    so set-up it leaves out of wall time (building a model) stays out of CPU time too.
    """
    names, out = list(runs), {name: [] for name in runs}
    for name in names:
        CPU[name] = []
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            cpu = cpu_seconds()
            got = runs[name]()
            spent = cpu_seconds() - cpu
            out[name].append(got.wall if isinstance(got, Timing) else got)
            CPU[name].append(got.cpu if isinstance(got, Timing) else spent)
            print(f"  repeat {r + 1}/{repeats} {name}: {out[name][-1]:.2f} s wall, "
                  f"{CPU[name][-1]:.2f} s CPU", flush=True)  # fmt: skip
    return out


CPU: dict[str, list[float]] = {}


def cpu_seconds() -> float:
    """CPU seconds so far of this process and its finished children."""
    import resource

    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measured(fn: Callable[[], object]) -> Timing:
    """Wall and CPU seconds of `fn` alone."""
    cpu, start = cpu_seconds(), time.perf_counter()
    fn()
    return Timing(time.perf_counter() - start, cpu_seconds() - cpu)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ratios(runs: dict[str, list[float]]) -> tuple[float, float]:
    """(wall, CPU) ratio of the first entry's median to the second's."""
    (a, wall_a), (b, wall_b) = runs.items()
    cpu = statistics.median(CPU[a]) / statistics.median(CPU[b])
    return statistics.median(wall_a) / statistics.median(wall_b), cpu
