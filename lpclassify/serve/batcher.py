"""Cross-request micro-batching: one worker per loaded model, a short wait window, a bounded queue.

Requests put a :class:`Job` (its items and a future) on the model's queue without waiting; a full
queue is refused at once (:class:`~lpclassify.serve.errors.Overloaded`, 429), never queued without
limit. One worker coroutine takes the oldest job, waits up to ``max_wait_s`` for more, and hands
the jobs that share its key (the same classifier) -- up to ``max_batch_size`` items -- to ``run``
in a one-thread executor, so the model is only ever called from one thread. Jobs whose caller gave
up (a cancelled future: timeout, client gone) are dropped before they run; once every caller of a
running batch has given up, its ``stop`` event is set so that ``run`` can stop between model calls
(raising :class:`Dropped`). An exception fails only the batch that raised it. While the model runs,
new jobs gather for the next batch.

Nothing here knows FastAPI or lpclassify's classifier: ``run(key, [items, ...], stop) -> [result, ...]``
is any function (one result per job, checked), so the batcher is tested with a fake.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import Overloaded, ShuttingDown

T = TypeVar("T")
RunBatch = Callable[[Hashable, list[Sequence[Any]], threading.Event], list[Any]]


class Dropped(Exception):
    """Raised by ``run`` when it saw ``stop`` set: every caller of the batch gave up, its work was dropped."""


@dataclass(eq=False)
class Job:
    """One request's items for one key, and the future its caller awaits."""

    key: Hashable
    items: Sequence[Any]
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What the worker reports after each batch (for metrics): sizes and times."""

    jobs: int
    items: int
    queue_seconds: list[float]
    inference_seconds: float
    dropped: int


class Batcher:
    """Micro-batches jobs for one model; see the module docstring. Create it inside the running loop."""

    def __init__(self, run: RunBatch, *, max_batch_size: int = 64, max_wait_s: float = 0.002, max_queue: int = 256,
                 retry_after_s: int = 1, on_batch: Callable[[BatchStats], None] | None = None,
                 name: str = "model") -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size and max_queue must be at least 1, max_wait_s at least 0")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.on_batch = on_batch
        self.name = name
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._waiting: collections.deque[Job] = collections.deque()  # taken off the queue, not yet run
        self._outstanding = 0  # jobs accepted and not yet started (queue + waiting)
        self._closing = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lpclassify-{name}")
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ callers

    @property
    def depth(self) -> int:
        """Jobs accepted and waiting for the model."""
        return self._outstanding

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.name}")

    def submit(self, key: Hashable, items: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue a job without waiting; its future gets ``run``'s result for it (or its exception)."""
        if self._closing:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        if self._outstanding >= self.max_queue:
            raise Overloaded(f"the server is busy ({self._outstanding} requests queued for {self.name}, the limit "
                             f"is {self.max_queue}); retry after {self.retry_after_s} s",
                             headers={"Retry-After": str(self.retry_after_s)})
        job = Job(key, items, asyncio.get_running_loop().create_future())
        self._outstanding += 1
        self._queue.put_nowait(job)
        return job.future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model's thread, between batches (set-up that calls the model)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Stop accepting jobs, finish every job already accepted, then stop the worker."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ the worker

    async def _work(self) -> None:
        stopping = False
        while True:
            if not self._waiting:
                if stopping:
                    return
                job = await self._queue.get()
                if job is None:
                    return
                self._waiting.append(job)
            stopping = await self._gather() or stopping
            jobs = self._take_batch()
            if jobs:
                await self._run(jobs)

    async def _gather(self) -> bool:
        """Move queued jobs to ``_waiting`` until the head's key has a full batch or the window closes.
        Returns True when the stop sentinel was seen (the jobs before it still run)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while True:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    return True
                self._waiting.append(job)
            if self._head_items() >= self.max_batch_size:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                job = await asyncio.wait_for(self._queue.get(), remaining)
            except asyncio.TimeoutError:
                return False
            if job is None:
                return True
            self._waiting.append(job)

    def _head_items(self) -> int:
        key = self._waiting[0].key
        return sum(len(job.items) for job in self._waiting if job.key == key)

    def _take_batch(self) -> list[Job]:
        """The oldest job and the next ones with its key, up to ``max_batch_size`` items (the oldest
        alone when it is bigger); cancelled jobs are dropped here."""
        key = self._waiting[0].key
        jobs: list[Job] = []
        kept: collections.deque[Job] = collections.deque()
        size = 0
        for job in self._waiting:
            if job.key == key and (not jobs or size + len(job.items) <= self.max_batch_size):
                jobs.append(job)
                size += len(job.items)
            else:
                kept.append(job)
        self._waiting = kept
        self._outstanding -= len(jobs)
        return jobs

    async def _run(self, jobs: list[Job]) -> None:
        live = [job for job in jobs if not job.future.done()]  # a caller that gave up: drop its work
        dropped = len(jobs) - len(live)
        if not live:
            self._report(live, 0.0, dropped)
            return
        started = time.perf_counter()
        stop = threading.Event()

        def gave_up(_: asyncio.Future[Any]) -> None:
            if all(job.future.done() for job in live):
                stop.set()

        for job in live:
            job.future.add_done_callback(gave_up)
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.run, live[0].key, [job.items for job in live], stop)
            if not isinstance(results, list) or len(results) != len(live):
                got = len(results) if isinstance(results, list) else type(results).__name__
                raise RuntimeError(f"the batch function returned {got} results for {len(live)} jobs")
        except Dropped:
            self._report([], 0.0, dropped + len(live))
            return
        except Exception as exc:  # fail this batch only; the worker goes on
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
        else:
            for job, result in zip(live, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
        self._report(live, time.perf_counter() - started, dropped, started)

    def _report(self, live: list[Job], seconds: float, dropped: int, started: float | None = None) -> None:
        if self.on_batch is None:
            return
        waited = [(started or time.perf_counter()) - job.enqueued for job in live]
        with contextlib.suppress(Exception):  # metrics must never break serving
            self.on_batch(BatchStats(len(live), sum(len(job.items) for job in live), waited, seconds, dropped))
