"""Progress of a long loop for the run log: done of total, rate and ETA, at most every few
seconds (and always at the end); and `StepLog`, the same pace for loops that log every N steps."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

# A training loop's progress line: `sft step 10/600 loss ...`, `stage head step 25/150 ...`,
# `grpo step 3/20 ...`; not `contrastive: resumed at step 5/40` (a colon: a notice, kept).
STEP_LINE = re.compile(r"^[\w ]+? step (\d+)/(\d+)\b")


def clock(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    """`step(n)` after each unit of work; logs `what done/total, rate/s, ETA` through `log`
    when `every_s` seconds have passed since the last line, and when the total is reached."""

    def __init__(
        self,
        total: int,
        log: Callable[[str], None] | None,
        every_s: float = 10.0,
        *,
        what: str = "done",
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.log, self.every_s, self.what, self._now = total, log, every_s, what, now
        self.done = 0
        self._start = self._last = now()

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.log is None:
            return
        t = self._now()
        if t - self._last >= self.every_s or self.done >= self.total:
            self._last = t
            self.log(self.line(t))

    def line(self, t: float | None = None) -> str:
        elapsed = (self._now() if t is None else t) - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = max(self.total - self.done, 0)
        eta = clock(left / rate) if rate > 0 else "?"
        return f"{self.what} {self.done}/{self.total}, {rate:.2f}/s, ETA {eta}"


class StepLog:
    """A log for loops that report every few steps: a `... step n/total ...` line (STEP_LINE)
    goes through when `every_s` seconds have passed since the last that did, and at its
    total; every other line (notices: resumed, early stop) goes through at once.

    Each line through Dagster's `context.log` is an event written to the run's storage, so a
    600-step fine-tune logging every 10 steps is 60 writes per seed; this keeps one per
    `every_s`, like `Progress`.
    """

    def __init__(
        self,
        log: Callable[[str], None],
        every_s: float = 10.0,
        *,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.every_s, self._now = log, every_s, now
        self._last: float | None = None

    def __call__(self, line: str) -> None:
        step = STEP_LINE.match(line)
        if step is None:
            self.log(line)
            return
        t = self._now()
        at_total = int(step[1]) >= int(step[2])
        if self._last is None or t - self._last >= self.every_s or at_total:
            self._last = t
            self.log(line)
