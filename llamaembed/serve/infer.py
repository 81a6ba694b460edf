"""A served model: its batching queue and one request's run through it (no HTTP here).

A request's inputs are prepared (tokenised and checked, inline when small, in a thread
when large), each saying what it wants of the model (``outputs.Want``), submitted to the
model's :class:`Batcher` as one job, and awaited; a client that leaves first has its job
dropped from the queue. Tokens are counted as they are tokenised: past
``max_request_tokens``, or past the room left in the queue, the work stops and the request
is refused at once. Only library errors are raised (``InputTooLongError``,
``QueueFullError``, ``RequestTooLargeError``, ``InferenceError``, …) and
:class:`ClientGone`; ``serve.errors`` turns them into answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..batch import BatchEmbedder
from ..errors import InferenceError, RequestTooLargeError
from ..hub.spec import ModelSpec
from ..outputs import ModelInput, Output, Want
from .batcher import Batcher, Job
from .metrics import Metrics

__all__ = [
    "COLBERT_MAX_FLOATS",
    "INLINE_TOKENIZE",
    "Budget",
    "ClientGone",
    "Limits",
    "Served",
    "start",
]

logger = logging.getLogger(__name__)

# The most floats one /embed_colbert answer holds: 32 MiB of float32, about 80 MB of JSON.
COLBERT_MAX_FLOATS = 8 * 2**20

# Outputs that hold a vector a token, and so are capped by COLBERT_MAX_FLOATS.
_PER_TOKEN = Want.COLBERT | Want.TOKENS

# Tokenising this many characters (or ids) inline would stall the event loop; past it the
# work goes to a thread.
INLINE_TOKENIZE = 20_000

Gone = Callable[[], Coroutine[Any, Any, None]]
"""Returns a coroutine that finishes when the request's client disconnects."""


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass(frozen=True)
class Limits:
    """The queue's settings, from the server's configuration."""

    max_batch_tokens: int
    max_queue_tokens: int
    max_request_tokens: int
    batch_wait: float


class Budget:
    """A request's token count, refusing it as soon as it is over a limit.

    Called with each input's tokens while they are counted (``on_tokens``), ``inputs``
    times in all: raises RequestTooLargeError past ``limit``, QueueFullError past the
    queue's free room. A request refused part-way is estimated at its average so far
    times its inputs, for a Retry-After that is about the wait it needs.
    """

    def __init__(self, limit: int, batcher: Batcher, inputs: int, why: str = "") -> None:
        self.limit = limit
        self.batcher = batcher
        self.inputs = inputs
        self.why = why or "the most this server takes in one request (--max-request-tokens)"
        self.counted = 0
        self.tokens = 0

    def __call__(self, tokens: int) -> None:
        """Count one input's ``tokens``; raise if the request is now over a limit."""
        self.tokens += tokens
        self.counted += 1
        if self.tokens > self.limit:
            raise RequestTooLargeError(
                f"this request holds more than {self.limit} tokens, {self.why}; split it",
                n_tokens=self.tokens,
                limit=self.limit,
            )
        if self.tokens > self.batcher.free_tokens:
            expected = self.tokens * max(1, self.inputs) // max(1, min(self.counted, self.inputs))
            raise self.batcher.refuse(max(self.tokens, expected))


@dataclass
class Served:
    """One model the server answers with: what it is called, the model and its queue."""

    kind: str  # "embedding" or "rerank"
    spec: ModelSpec
    model: BatchEmbedder
    batcher: Batcher
    max_request_tokens: int
    owned: bool = True  # the server opened it, so the server closes it
    created: int = field(default_factory=lambda: int(time.time()))
    # hears how many inputs of a request were cut to the context (a metric, not a log line)
    on_truncate: Callable[[int], None] | None = None

    def answers_to(self, name: str | None) -> bool:
        """Return True when a request naming ``name`` (None: any) means this model."""
        if name is None:
            return True
        names = (self.spec.name, *self.spec.aliases)
        # Ollama's clients name a model with a tag; ":latest" is the one a bare name means
        return name in names or name.removesuffix(":latest") in names

    def check_room(self) -> None:
        """Raise QueueFullError when the queue has no room at all (before any parsing)."""
        if self.batcher.free_tokens < 1:
            raise self.batcher.refuse(1)

    async def texts(
        self,
        texts: Sequence[str],
        want: Want,
        *,
        truncate: bool,
        gone: Gone,
    ) -> tuple[list[Output], Job]:
        """Return each text's outputs, as ``want`` asks, and the job that ran them.

        Answers that hold a vector a token (ColBERT vectors, token states) are capped at
        ``COLBERT_MAX_FLOATS`` floats' worth of tokens (the answer's size), below the
        request cap.
        """
        model = self.model
        limit, why = self.max_request_tokens, ""
        per_token = want is not Want.POOLED and want & _PER_TOKEN
        if per_token and COLBERT_MAX_FLOATS // model.n_embd < limit:
            limit = COLBERT_MAX_FLOATS // model.n_embd
            what = "ColBERT vectors" if want & Want.COLBERT else "token states"
            why = (
                f"the most whose {what} ({model.n_embd} floats a token) one answer "
                f"holds ({COLBERT_MAX_FLOATS:,} floats)"
            )
        budget = Budget(limit, self.batcher, len(texts), why)
        sequences = await _prepare(
            sum(map(len, texts)),
            lambda: model.prepare_texts(
                texts, truncate=truncate, on_truncate=self.on_truncate, on_tokens=budget
            ),
        )
        return await self._run([ModelInput(s, want) for s in sequences], gone)

    async def tokens(
        self, token_lists: Sequence[Sequence[int]], *, truncate: bool, gone: Gone
    ) -> tuple[list[Output], Job]:
        """Return the pooled outputs of token id lists, used as given, and the job."""
        model = self.model
        size = sum(map(len, token_lists))
        Budget(self.max_request_tokens, self.batcher, 1)(size)  # as sent, before checks
        sequences = await _prepare(
            size, lambda: model.prepare_tokens(token_lists, truncate=truncate)
        )
        return await self._run([ModelInput(s) for s in sequences], gone)

    async def pairs(
        self, query: str, documents: Sequence[str], *, gone: Gone
    ) -> tuple[list[Output], Job]:
        """Return the cross-encoder's outputs (class logits) for each document, and the job."""
        model = self.model
        budget = Budget(self.max_request_tokens, self.batcher, len(documents))
        size = sum(map(len, documents)) + len(query) * len(documents)
        pairs = await _prepare(
            size, lambda: model.prepare_pairs(query, documents, on_tokens=budget)
        )
        return await self._run([ModelInput(p) for p in pairs], gone)

    async def _run(self, inputs: list[ModelInput], gone: Gone) -> tuple[list[Output], Job]:
        job = self.batcher.submit(inputs, [len(item.tokens) for item in inputs])  # may be full
        return await _wait(job, gone), job

    def close(self, *, drain: bool = True) -> None:
        """Stop the queue (after its work, or dropping it); free the model if ours."""
        self.batcher.close(drain=drain)
        if self.owned:
            self.model.close()


def start(
    kind: str,
    spec: ModelSpec,
    model: BatchEmbedder,
    limits: Limits,
    metrics: Metrics,
    *,
    owned: bool = True,
) -> Served:
    """Return a served model with its queue running and reporting to ``metrics``."""
    name = spec.name

    def observe(inputs: int, tokens: int, seconds: float) -> None:
        metrics.observe_batch(name, inputs, tokens, seconds)

    batcher = Batcher(
        model.forward,
        max_batch_tokens=limits.max_batch_tokens,
        max_queue_tokens=limits.max_queue_tokens,
        batch_wait=limits.batch_wait,
        on_batch=observe,
        on_drop=metrics.dropped.labels(name).inc,
        name=name,
    )
    metrics.queue_size.labels(name).set_function(lambda: batcher.queue_size)
    metrics.queue_tokens.labels(name).set_function(lambda: batcher.queued_tokens)
    return Served(
        kind,
        spec,
        model,
        batcher,
        limits.max_request_tokens,
        owned=owned,
        on_truncate=metrics.truncated.labels(name).inc,
    )


async def _prepare(size: int, work: Callable[[], list[Any]]) -> list[Any]:
    """Run tokenisation inline when small, in a thread when it would stall the loop."""
    if size <= INLINE_TOKENIZE:
        return work()
    return await asyncio.to_thread(work)


async def _wait(job: Job, gone: Gone) -> Any:
    """Return the job's rows; if the client leaves first, drop the job and raise ClientGone."""
    future = asyncio.wrap_future(job.future)
    watcher = asyncio.get_running_loop().create_task(gone())
    left = False

    def on_watch_end(task: asyncio.Task[None]) -> None:
        nonlocal left
        if not task.cancelled() and task.exception() is None and not future.done():
            left = True
            job.cancel()  # its queued inputs are skipped; `future` is cancelled with it

    # A done-callback rather than asyncio.wait: it costs no extra futures per request.
    watcher.add_done_callback(on_watch_end)
    try:
        return await future
    except asyncio.CancelledError:
        if left:
            raise ClientGone from None
        job.cancel()
        raise
    except Exception as exc:
        logger.exception("inference failed")
        raise InferenceError(f"inference failed: {exc}") from exc
    finally:
        watcher.cancel()
