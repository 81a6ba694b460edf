"""The batching queue: inputs of concurrent requests packed into shared model runs.

A plain class with no HTTP in it. Each request submits its prepared inputs as one
:class:`Job`; one worker thread takes inputs first come, first served, up to a token
budget per run (a request's inputs may span several runs), hands them to the model (whose
engine packs them into micro-batches longest first) and scatters the output rows back to
their jobs in input order. The queue is bounded in tokens, the unit of work, so that a
job admitted waits at most for the tokens ahead of it; a job whose client has gone is
dropped before it costs any inference.

When fewer inputs wait than the last run took, the worker waits a moment (``batch_wait``)
for the rest: under steady load the clients just answered are sending their next
requests, and without the wait the first of them would run alone, half the runs small.
One client, whose last run held one input, never waits.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import QueueFullError

__all__ = ["RETRY_AFTER_CAP", "Batcher", "Job"]

logger = logging.getLogger(__name__)

# The longest Retry-After a full queue advises, in seconds: past a minute an estimate from
# the recent token rate says little, and a client should rather look elsewhere.
RETRY_AFTER_CAP = 60.0

RunFunction = Callable[[list[Any]], Any]
"""Prepared inputs → one output per input, in order (``BatchEmbedder.forward``)."""
BatchObserver = Callable[[int, int, float], None]


class Job:
    """One request's inputs in the queue; ``future`` resolves to their outputs, in order."""

    __slots__ = (
        "_remaining",
        "cancelled",
        "enqueued_at",
        "future",
        "inference_seconds",
        "lengths",
        "rows",
        "started_at",
        "tokens",
    )

    def __init__(self, lengths: Sequence[int]) -> None:
        self.future: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        self.lengths = list(lengths)
        self.tokens = sum(self.lengths)
        self.rows: list[Any] = [None] * len(self.lengths)
        self._remaining = len(self.lengths)
        self.cancelled = False
        self.enqueued_at = time.perf_counter()
        self.started_at: float | None = None
        self.inference_seconds = 0.0

    @property
    def queue_seconds(self) -> float:
        """Return how long the job waited before its first input ran."""
        started = self.started_at if self.started_at is not None else time.perf_counter()
        return started - self.enqueued_at

    def cancel(self) -> None:
        """Drop the job's inputs that have not run yet (its client has gone)."""
        self.cancelled = True
        self.future.cancel()

    @property
    def finished(self) -> bool:
        """Return True once the job has its rows, failed, or was cancelled."""
        return self.cancelled or self.future.done()

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
                self.future.set_exception(exc)

    def _deliver(self, index: int, row: Any) -> None:
        self.rows[index] = row
        self._remaining -= 1
        if self._remaining == 0 and not self.future.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self.future.set_result(self.rows)


class Batcher:
    """Queue inputs from many requests and run them through one model in shared batches.

    ``run`` takes a list of prepared inputs and returns one output per input (e.g.
    ``Llama.forward``). ``max_batch_tokens`` caps the tokens of one run (an input longer
    than it runs alone); ``max_queue_tokens`` caps the tokens waiting, beyond which
    ``submit`` raises :class:`QueueFullError`. ``batch_wait`` is the longest wait, in seconds, for
    as many inputs as the last run took (0: run whatever waits at once).
    """

    def __init__(
        self,
        run: RunFunction,
        *,
        max_batch_tokens: int = 4096,
        max_queue_tokens: int = 600_000,
        batch_wait: float = 0.002,
        on_batch: BatchObserver | None = None,
        on_drop: Callable[[int], None] | None = None,
        name: str = "model",
    ) -> None:
        if max_batch_tokens < 1 or max_queue_tokens < 1:
            raise ValueError("max_batch_tokens and max_queue_tokens must be at least 1")
        if not 0 <= batch_wait <= 1:
            raise ValueError(f"batch_wait must be within 0 and 1 second, got {batch_wait}")
        self._run = run
        self.max_batch_tokens = max_batch_tokens
        self.max_queue_tokens = max_queue_tokens
        self.batch_wait = batch_wait
        self._last_run = 0  # inputs in the last run
        self._on_batch = on_batch
        self._on_drop = on_drop
        self.name = name
        self._items: collections.deque[tuple[Job, int, Any]] = collections.deque()
        self._queued = 0  # inputs waiting, cancelled ones included until they are skipped
        self._queued_tokens = 0  # their tokens
        self._condition = threading.Condition()
        self._closing = False
        self._rate = 0.0  # tokens per second, smoothed, for Retry-After
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def queue_size(self) -> int:
        """Return the number of inputs waiting to run."""
        return self._queued

    @property
    def queued_tokens(self) -> int:
        """Return the number of tokens waiting to run."""
        return self._queued_tokens

    @property
    def free_tokens(self) -> int:
        """Return how many tokens a job may hold to be admitted now."""
        return self.max_queue_tokens - self._queued_tokens

    def retry_after(self, tokens: int) -> float:
        """Return the seconds until a job of ``tokens`` would fit, from the measured rate.

        At least 1 and at most :data:`RETRY_AFTER_CAP`; 1 before any run was measured.
        """
        excess = self._queued_tokens + tokens - self.max_queue_tokens
        if self._rate <= 0 or excess <= 0:
            return 1.0
        return min(RETRY_AFTER_CAP, max(1.0, excess / self._rate))

    def refuse(self, tokens: int) -> QueueFullError:
        """Return the error for a job of ``tokens`` (or more) that does not fit now."""
        return QueueFullError(
            f"the queue holds {self._queued_tokens} tokens and takes at most "
            f"{self.max_queue_tokens}; this request needs about {tokens}",
            retry_after=self.retry_after(tokens),
        )

    def submit(self, inputs: Sequence[Any], lengths: Sequence[int]) -> Job:
        """Queue one request's inputs and return its Job; raise QueueFullError when full."""
        if len(inputs) != len(lengths):
            raise ValueError("inputs and lengths differ in length")
        job = Job(lengths)
        if not inputs:
            job.future.set_result([])
            return job
        with self._condition:
            if self._closing:
                raise RuntimeError("the batcher is stopped")
            if job.tokens > self.free_tokens:
                raise self.refuse(job.tokens)
            self._items.extend((job, i, item) for i, item in enumerate(inputs))
            self._queued += len(inputs)
            self._queued_tokens += job.tokens
            self._condition.notify()
        return job

    def close(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """Stop the worker thread once the queue is run (``drain``) or dropped.

        Without ``drain`` the jobs still queued fail with RuntimeError, at once; the run in
        progress finishes first.
        """
        with self._condition:
            self._closing = True
            if not drain:
                for job in dict.fromkeys(job for job, _, _ in self._items):
                    job._fail(RuntimeError("the server stopped before this request ran"))
                self._items.clear()
                self._queued = self._queued_tokens = 0
            self._condition.notify()
        self._thread.join(timeout)

    # ----------------------------------------------------------------- worker
    def _take(self) -> list[tuple[Job, int, Any]] | None:
        """Return the next run's inputs (first come, first served, within the budget)."""
        with self._condition:
            while not self._items:
                if self._closing:
                    return None
                self._condition.wait()
            self._gather()
            batch: list[tuple[Job, int, Any]] = []
            used = 0
            dropped = 0
            while self._items:
                job, index, item = self._items[0]
                length = job.lengths[index]
                if job.finished:  # cancelled by its client, or failed in an earlier run
                    self._items.popleft()
                    self._queued -= 1
                    self._queued_tokens -= length
                    dropped += job.cancelled
                    continue
                if batch and used + length > self.max_batch_tokens:
                    break
                self._items.popleft()
                self._queued -= 1
                self._queued_tokens -= length
                batch.append((job, index, item))
                used += length
            self._last_run = len(batch)
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)
        return batch

    def _gather(self) -> None:
        """Wait up to ``batch_wait`` until as many inputs wait as the last run took."""
        if self.batch_wait <= 0 or self._queued >= self._last_run:
            return
        deadline = time.perf_counter() + self.batch_wait
        while self._queued < self._last_run and not self._closing:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._condition.wait(remaining)

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            now = time.perf_counter()
            for job, _, _ in batch:
                if job.started_at is None:
                    job.started_at = now
            self._execute(batch)

    def _execute(self, batch: list[tuple[Job, int, Any]]) -> None:
        start = time.perf_counter()
        try:
            rows = self._run([item for _, _, item in batch])
        except Exception as exc:
            jobs = list(dict.fromkeys(job for job, _, _ in batch))
            if len(jobs) == 1:
                logger.warning("a batch of %d inputs failed: %s", len(batch), exc)
                jobs[0]._fail(exc)
                return
            # Run each request's share alone, so that only the request at fault fails.
            for job in jobs:
                self._execute([entry for entry in batch if entry[0] is job])
            return
        seconds = time.perf_counter() - start
        tokens = 0
        for job in dict.fromkeys(job for job, _, _ in batch):
            job.inference_seconds += seconds
        for (job, index, _), row in zip(batch, rows, strict=True):
            tokens += job.lengths[index]
            job._deliver(index, row)
        rate = tokens / seconds if seconds > 0 else 0.0
        self._rate = rate if self._rate == 0 else 0.8 * self._rate + 0.2 * rate
        if self._on_batch is not None:
            self._on_batch(len(batch), tokens, seconds)
