"""Dynamic batching: the pairs of concurrent requests share one `scorer.score` call.

A forward pass over 32 pairs costs little more than one over 2, so a reward server that scores
each request alone spends most of its time on per-call overhead. Requests put their pairs on an
asyncio queue; one worker task takes up to `max_batch` of them, waiting at most `max_wait_ms`
for the batch to fill (only while the queue is empty: under load it fills at once), and scores
them in a single worker thread (scorers are not assumed thread-safe, and the event loop must
keep accepting requests meanwhile). Each pair's future gets its own score back.

`dynamic=False` (or `max_batch=1`) is the baseline: each request's pairs are scored on their
own, in calls of at most `max_batch` pairs, with no waiting; the same single thread runs them.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from rs_pipeline.core.scoring.base import Scorer


@dataclass(frozen=True)
class ScoreItem:
    """One pair to score: an image, a text, and the question the text answers (or None)."""

    image: Image.Image
    text: str
    question: str | None = None


class ScorerFailed(RuntimeError):
    """The scorer raised (or returned nonsense) on a batch; its requests fail with this."""


class BatcherClosed(RuntimeError):
    """The batcher is not running (not started yet, or draining for shutdown)."""


@dataclass(frozen=True)
class _Pending:
    item: ScoreItem
    future: asyncio.Future[float]


_STOP = object()  # queued by `close`: every item before it is still scored


def takes_batch_size(scorer: Scorer) -> bool:
    """Whether `scorer.score` accepts `batch_size` (learned scorers do, baselines may not)."""
    try:
        params = inspect.signature(scorer.score).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented score: pass nothing extra
        return False
    return "batch_size" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Batcher:
    """Queues pairs from concurrent requests; one scorer call per batch, in one thread."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch: int,
        max_wait_ms: float,
        dynamic: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch is {max_batch}; set serving.max_batch to 1 or more")
        self.scorer = scorer
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.dynamic = dynamic and max_batch > 1
        self._on_batch = on_batch
        # Passing the batch's own size keeps a whole batch in one forward pass.
        self._pass_batch_size = takes_batch_size(scorer)
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[_Pending | object] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the scorer thread (and the batching task); call from the serving loop."""
        if self._executor is not None:
            return
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs-scorer")
        if self.dynamic:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run(), name="rs-batcher")

    async def close(self) -> None:
        """Refuse new pairs, score every queued one, then stop the task and the thread."""
        if self._executor is None:
            return
        self._closing = True
        if self._worker is not None and self._queue is not None:
            self._queue.put_nowait(_STOP)
            await self._worker
        executor, self._executor, self._worker, self._queue = self._executor, None, None, None
        # A baseline call may still be running in the thread: wait for it off the loop.
        await asyncio.to_thread(executor.shutdown, wait=True)

    async def score(self, items: Sequence[ScoreItem]) -> list[float]:
        """One score per item, in order; ScorerFailed if the scorer raised on any of them."""
        if self._executor is None or self._closing:
            raise BatcherClosed("the scorer is not running (the server is starting or stopping)")
        if not items:
            return []
        if not self.dynamic:
            out: list[float] = []
            for i in range(0, len(items), self.max_batch):
                out += await self._call(items[i : i + self.max_batch])
            return out
        assert self._queue is not None  # set with the worker in `start`
        loop = asyncio.get_running_loop()
        pending = [_Pending(item, loop.create_future()) for item in items]
        for p in pending:
            self._queue.put_nowait(p)
        # return_exceptions: every future's outcome is read, so none is logged as unretrieved.
        results = await asyncio.gather(*(p.future for p in pending), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return list(results)

    async def _run(self) -> None:
        assert self._queue is not None
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch, stop = await self._fill([first])
            # A request whose client went away cancelled its futures: skip its pairs.
            live = [p for p in batch if not p.future.done()]
            if live:
                await self._resolve(live)

    async def _fill(self, batch: list) -> tuple[list[_Pending], bool]:
        """Up to max_batch items, waiting at most max_wait for more; True when told to stop."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    async def _resolve(self, batch: list[_Pending]) -> None:
        try:
            scores = await self._call([p.item for p in batch])
        except Exception as err:  # noqa: BLE001 - the worker must outlive any one batch
            failed = err if isinstance(err, ScorerFailed) else ScorerFailed(str(err))
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(failed)
            return
        for p, s in zip(batch, scores, strict=True):
            if not p.future.done():
                p.future.set_result(s)

    async def _call(self, items: Sequence[ScoreItem]) -> list[float]:
        if self._on_batch is not None:
            self._on_batch(len(items))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._score_now, items)
        except ScorerFailed:
            raise
        except Exception as err:
            raise ScorerFailed(f"the scorer raised {type(err).__name__}: {err}") from err

    def _score_now(self, items: Sequence[ScoreItem]) -> list[float]:
        """The blocking call, in the scorer thread; checks one finite float per item."""
        questions = [it.question for it in items]
        kwargs = {"batch_size": len(items)} if self._pass_batch_size else {}
        scores = self.scorer.score(
            [it.image for it in items],
            [it.text for it in items],
            questions=None if all(q is None for q in questions) else questions,
            **kwargs,
        )
        if len(scores) != len(items):
            raise ScorerFailed(f"the scorer returned {len(scores)} scores for {len(items)} pairs")
        out = [float(s) for s in scores]
        if not all(math.isfinite(s) for s in out):
            raise ScorerFailed("the scorer returned a non-finite score (NaN or inf)")
        return out
