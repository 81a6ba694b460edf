"""Several llama.cpp contexts over one model, so a large batch keeps every core busy.

A context runs one micro-batch at a time, and with several threads it waits at a barrier
after every graph node; on small matrices (short texts, small models) that wait costs more
than the extra thread gains. Two contexts with half the threads each, fed micro-batches
from one queue in two Python threads (llama.cpp lets go of the GIL while it decodes),
ran 7-39% more texts per second on two cores (benchmarks/README.md, "Short texts
and the CPU's fastest type").

The weights are the model's and shared; each extra context costs its compute buffers
(and a decoder's KV cache), opened on the first batch that needs it. A call with one
micro-batch (a single query) runs on the first context with all the threads, so latency
is what one context gives. Every micro-batch is made up exactly as with one context, so
the results differ from one context's only as far as a kernel's thread split does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._types import FloatArray
from .layout import plan_batches

__all__ = ["ContextPool", "run_batches", "run_split", "split_threads"]


def split_threads(threads: int, contexts: int) -> list[int]:
    """Return the thread count of each of ``contexts`` contexts sharing ``threads``."""
    contexts = max(1, min(contexts, threads))
    base, extra = divmod(threads, contexts)
    return [base + (1 if i < extra else 0) for i in range(contexts)]


class ContextPool:
    """Up to ``size`` contexts made by ``factory``, all sharing ``threads`` threads.

    ``factory()`` returns a new context (``engine._handles.NativeContext``); the pool
    opens them lazily, sets their thread counts per call and closes them all.
    """

    def __init__(self, factory: Callable[[], Any], *, threads: int, size: int) -> None:
        self._factory = factory
        self.threads = threads
        self.size = max(1, min(size, threads))
        self._contexts: list[Any] = []

    @property
    def opened(self) -> int:
        """Return how many contexts are open now."""
        return len(self._contexts)

    def first(self) -> Any:
        """Return the first context, opening it if needed."""
        if not self._contexts:
            self._contexts.append(self._factory())
        return self._contexts[0]

    def workers(self, n_batches: int) -> list[Any]:
        """Return the contexts to run ``n_batches`` micro-batches on, threads set.

        One micro-batch (or a pool of one) runs on the first context with every thread.
        """
        count = max(1, min(self.size, n_batches))
        self.first()
        while len(self._contexts) < count:
            self._contexts.append(self._factory())
        chosen = self._contexts[:count]
        for context, threads in zip(chosen, split_threads(self.threads, count), strict=True):
            context.set_threads(threads)
        return chosen

    @property
    def stops(self) -> int:
        """Return how many micro-batches ended early at a decoder's final norm."""
        return sum(context.stops for context in self._contexts)

    def close(self) -> None:
        """Close every context; safe to call twice."""
        for context in self._contexts:
            context.close()
        self._contexts = []


def run_split(workers: Sequence[Any], n_batches: int, run_one: Callable[[Any, int], None]) -> None:
    """Call ``run_one(context, i)`` for every micro-batch ``i``, spread over the contexts.

    Each context takes the next micro-batch from one shared queue when it is free, so a
    long micro-batch on one does not hold the others back. The calling thread drives the
    first context; an error in any stops the rest and is raised here.
    """
    if len(workers) == 1 or n_batches <= 1:
        for i in range(n_batches):
            run_one(workers[0], i)
        return
    lock = threading.Lock()
    state = {"next": 0}
    errors: list[BaseException] = []

    def drive(context: Any) -> None:
        while True:
            with lock:
                i = state["next"]
                if errors or i >= n_batches:
                    return
                state["next"] = i + 1
            try:
                run_one(context, i)
            except BaseException as error:  # raised in the caller's thread below
                with lock:
                    errors.append(error)
                return

    helpers = [threading.Thread(target=drive, args=(c,), daemon=True) for c in workers[1:]]
    for helper in helpers:
        helper.start()
    try:
        drive(workers[0])
    finally:
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]


def run_batches(
    pool: ContextPool,
    sequences: list[Any],
    width: int,
    *,
    budget: int,
    max_seqs: int,
    token_level: bool,
    show_progress: bool = False,
) -> FloatArray | list[FloatArray]:
    """Run sequences through a pool's contexts in planned micro-batches, in input order.

    Pooled rows come back as one (n, width) array; token-level output (pooling none) as
    one (n_tokens, width) matrix per sequence. Several micro-batches are spread over the
    pool's contexts (``engine.contexts``). The caller holds the model's lock.
    """
    batches = plan_batches([len(s) for s in sequences], budget, max_seqs)
    rows: list[FloatArray] = [np.empty(0, np.float32)] * len(sequences)
    pooled = np.empty((len(sequences), width), dtype=np.float32)
    progress = None
    progress_lock = threading.Lock()
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(sequences), unit="text", desc="embedding")

    def run_one(context: Any, b: int) -> None:
        batch = batches[b]
        group = [sequences[i] for i in batch]
        if token_level:
            for i, matrix in zip(batch, context.token_level(group, width), strict=True):
                rows[i] = matrix
        else:
            pooled[batch] = context.pooled(group, width)
        if progress is not None:
            with progress_lock:
                progress.update(len(batch))

    try:
        run_split(pool.workers(len(batches)), len(batches), run_one)
    finally:
        if progress is not None:
            progress.close()
    return rows if token_level else pooled
