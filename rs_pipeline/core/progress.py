"""Progress of a long loop for the run log: done of total, rate and ETA, at most every few
seconds (and always at the end)."""

from __future__ import annotations

import time
from collections.abc import Callable


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
