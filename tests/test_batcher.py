"""The batching queue on its own (no HTTP), with a real model where inference matters."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from llamaembed import Llama, QueueFullError
from llamaembed.serve.batcher import RETRY_AFTER_CAP, Batcher


class Recorder:
    """A run function over a real model that records the batches it was given."""

    def __init__(self, llama: Llama, delay: float = 0.0) -> None:
        self.llama = llama
        self.delay = delay
        self.batches: list[int] = []
        self.tokens: list[int] = []

    def __call__(self, inputs: list) -> np.ndarray:
        time.sleep(self.delay)
        self.batches.append(len(inputs))
        self.tokens.append(sum(len(x) for x in inputs))
        return self.llama.pooled_rows(inputs)


def test_concurrent_jobs_share_batches_and_keep_their_order(tiny_encoder: Llama) -> None:
    texts = [f"the cat {'runs ' * (i % 7)} fast {i}" for i in range(60)]
    expected = tiny_encoder.embed_texts(texts, normalize=False)
    run = Recorder(tiny_encoder, delay=0.05)
    batcher = Batcher(run, max_batch_tokens=10_000)
    try:
        jobs = []
        for start in range(0, 60, 6):  # ten requests of six texts, queued together
            chunk = tiny_encoder.prepare_texts(texts[start : start + 6])
            jobs.append(batcher.submit(chunk, [len(s) for s in chunk]))
        rows = np.vstack([job.future.result(timeout=30) for job in jobs])
    finally:
        batcher.close()
    # Batch make-up changes float rounding (flash attention keeps K/V in F16), not results.
    cos = np.sum(rows * expected, axis=1) / (
        np.linalg.norm(rows, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cos.min() >= 0.99999
    assert np.allclose(np.linalg.norm(rows, axis=1), np.linalg.norm(expected, axis=1), rtol=1e-3)
    assert len(run.batches) < len(jobs)  # requests were packed together
    assert sum(run.batches) == 60


def test_token_budget_splits_one_job_over_several_runs(tiny_encoder: Llama) -> None:
    sequences = tiny_encoder.prepare_texts([("the " * 20).strip()] * 10)  # 22 tokens each
    assert {len(s) for s in sequences} == {22}
    run = Recorder(tiny_encoder)
    batcher = Batcher(run, max_batch_tokens=50)
    try:
        job = batcher.submit(sequences, [len(s) for s in sequences])
        rows = np.asarray(job.future.result(timeout=30))
    finally:
        batcher.close()
    assert rows.shape == (10, tiny_encoder.n_embd)
    assert max(run.tokens) <= 50 and sum(run.batches) == 10 and len(run.batches) == 5
    # An input longer than the budget still runs (alone).
    batcher = Batcher(Recorder(tiny_encoder), max_batch_tokens=5)
    try:
        assert len(batcher.submit(sequences[:1], [22]).future.result(timeout=30)) == 1
    finally:
        batcher.close()


def test_a_run_waits_briefly_for_as_many_inputs_as_the_last_one(tiny_encoder: Llama) -> None:
    sequence = tiny_encoder.prepare_texts(["cats"])[0]

    def scenario(batch_wait: float) -> list[int]:
        """Four inputs run; then one arrives, and three more 50 ms later."""
        run = Recorder(tiny_encoder)
        batcher = Batcher(run, max_batch_tokens=1000, batch_wait=batch_wait)
        try:
            batcher.submit([sequence] * 4, [len(sequence)] * 4).future.result(timeout=30)
            jobs = [batcher.submit([sequence], [len(sequence)])]
            time.sleep(0.05)
            jobs += [batcher.submit([sequence], [len(sequence)]) for _ in range(3)]
            for job in jobs:
                assert np.asarray(job.future.result(timeout=30)).shape == (1, tiny_encoder.n_embd)
        finally:
            batcher.close()
        return run.batches

    assert scenario(1.0) == [4, 4]  # the lone input waited for the other three
    without = scenario(0.0)
    assert without[:2] == [4, 1] and sum(without) == 8  # it ran alone

    # One client at a time (its last run held one input) never waits.
    run = Recorder(tiny_encoder)
    batcher = Batcher(run, max_batch_tokens=1000, batch_wait=1.0)
    try:
        batcher.submit([sequence], [len(sequence)]).future.result(timeout=30)
        first = batcher.submit([sequence], [len(sequence)])
        time.sleep(0.1)  # had the first waited for company, the second would join its run
        second = batcher.submit([sequence], [len(sequence)])
        for job in (first, second):
            assert np.asarray(job.future.result(timeout=30)).shape == (1, tiny_encoder.n_embd)
        # The wait ends at its limit when no more come, and at close.
        batcher.submit([sequence] * 4, [len(sequence)] * 4).future.result(timeout=30)
        lone = batcher.submit([sequence], [len(sequence)])
        assert np.asarray(lone.future.result(timeout=30)).shape == (1, tiny_encoder.n_embd)
        batcher.submit([sequence] * 4, [len(sequence)] * 4).future.result(timeout=30)
        last = batcher.submit([sequence], [len(sequence)])
    finally:
        started = time.perf_counter()
        batcher.close(timeout=30)
    assert np.asarray(last.future.result(timeout=0)).shape == (1, tiny_encoder.n_embd)
    assert time.perf_counter() - started < 0.5  # close cut the 1 s wait short
    assert run.batches == [1, 1, 1, 4, 1, 4, 1]
    with pytest.raises(ValueError, match="batch_wait"):
        Batcher(run, batch_wait=2.0)


def test_full_queue_raises_with_retry_after(tiny_encoder: Llama) -> None:
    gate = threading.Event()

    def blocked(inputs: list) -> np.ndarray:
        gate.wait(30)
        return tiny_encoder.pooled_rows(inputs)

    batcher = Batcher(blocked, max_batch_tokens=8, max_queue_tokens=12)  # four of 3 tokens
    sequence = tiny_encoder.prepare_texts(["cats"])[0]
    try:
        first = batcher.submit([sequence], [len(sequence)])
        time.sleep(0.1)  # the worker holds the first; the queue is empty again
        waiting = batcher.submit([sequence] * 4, [len(sequence)] * 4)
        with pytest.raises(QueueFullError) as info:
            batcher.submit([sequence], [len(sequence)])
        assert info.value.retry_after >= 1
        gate.set()
        assert np.asarray(first.future.result(timeout=30)).shape[0] == 1
        assert np.asarray(waiting.future.result(timeout=30)).shape[0] == 4
    finally:
        gate.set()
        batcher.close()


def test_cancelled_job_is_dropped_before_inference(tiny_encoder: Llama) -> None:
    gate = threading.Event()
    seen: list[int] = []
    dropped: list[int] = []

    def run(inputs: list) -> np.ndarray:
        gate.wait(30)
        seen.append(len(inputs))
        return tiny_encoder.pooled_rows(inputs)

    batcher = Batcher(run, max_batch_tokens=4, on_drop=dropped.append)
    sequence = tiny_encoder.prepare_texts(["cats"])[0]  # 3 tokens: one input per run
    try:
        first = batcher.submit([sequence], [3])
        time.sleep(0.1)
        gone = batcher.submit([sequence] * 5, [3] * 5)
        gone.cancel()
        gate.set()
        first.future.result(timeout=30)
        last = batcher.submit([sequence], [3])
        last.future.result(timeout=30)
    finally:
        batcher.close()
    assert sum(seen) == 2 and sum(dropped) == 5


def test_a_failing_input_fails_only_its_own_request(tiny_encoder: Llama) -> None:
    poison = np.array([10**6], dtype=np.int32)  # an id past the vocabulary
    gate = threading.Event()

    def run(inputs: list) -> np.ndarray:
        gate.wait(30)
        if any(len(x) == 1 and x[0] == poison[0] for x in inputs):
            raise ValueError("bad input")
        return tiny_encoder.pooled_rows(inputs)

    batcher = Batcher(run, max_batch_tokens=1000)
    good = tiny_encoder.prepare_texts(["cats purr", "dogs bark"])
    try:
        blocker = batcher.submit(good[:1], [len(good[0])])
        time.sleep(0.1)
        ok = batcher.submit(good, [len(s) for s in good])
        bad = batcher.submit([poison], [1])
        gate.set()
        blocker.future.result(timeout=30)
        assert np.asarray(ok.future.result(timeout=30)).shape == (2, tiny_encoder.n_embd)
        with pytest.raises(ValueError, match="bad input"):
            bad.future.result(timeout=30)
        after = batcher.submit(good, [len(s) for s in good])  # the worker is still alive
        assert np.asarray(after.future.result(timeout=30)).shape[0] == 2
    finally:
        batcher.close()


def test_close_runs_what_is_queued(tiny_encoder: Llama) -> None:
    sequences = tiny_encoder.prepare_texts(["a b c"] * 20)
    batcher = Batcher(Recorder(tiny_encoder, delay=0.01), max_batch_tokens=10)
    job = batcher.submit(sequences, [len(s) for s in sequences])
    batcher.close()
    assert np.asarray(job.future.result(timeout=1)).shape[0] == 20
    with pytest.raises(RuntimeError):
        batcher.submit(sequences, [len(s) for s in sequences])


def test_queue_is_bounded_in_tokens_with_retry_after_from_the_token_rate(
    tiny_encoder: Llama,
) -> None:
    gate = threading.Event()
    gate.set()

    def run(inputs: list) -> np.ndarray:
        gate.wait(30)
        return tiny_encoder.pooled_rows(inputs)

    batcher = Batcher(run, max_batch_tokens=64, max_queue_tokens=100)
    sequence = tiny_encoder.prepare_texts(["cats purr"])[0]
    n = len(sequence)
    try:
        assert batcher.retry_after(10**6) == 1.0  # no rate measured yet
        batcher.submit([sequence] * 4, [n] * 4).future.result(timeout=30)  # measures the rate
        gate.clear()
        batcher.submit([sequence], [n])  # held by the worker
        time.sleep(0.1)
        waiting = batcher.submit([sequence] * 5, [n] * 5)
        assert batcher.queued_tokens == 5 * n and batcher.free_tokens == 100 - 5 * n
        fits = 100 - 5 * n
        assert batcher.retry_after(fits) == 1.0  # it would fit now
        with pytest.raises(QueueFullError) as info:
            batcher.submit([sequence] * 20, [n] * 20)  # more tokens than are free
        assert 1.0 <= info.value.retry_after <= RETRY_AFTER_CAP
        assert "needs" in str(info.value)
        assert batcher.retry_after(10**12) == RETRY_AFTER_CAP  # capped, however long
        gate.set()
        assert np.asarray(waiting.future.result(timeout=30)).shape == (5, tiny_encoder.n_embd)
        assert batcher.queued_tokens == 0
    finally:
        gate.set()
        batcher.close()


def test_close_without_drain_fails_the_queued_jobs(tiny_encoder: Llama) -> None:
    gate = threading.Event()

    def run(inputs: list) -> np.ndarray:
        gate.wait(30)
        return tiny_encoder.pooled_rows(inputs)

    batcher = Batcher(run, max_batch_tokens=4)
    sequence = tiny_encoder.prepare_texts(["cats"])[0]
    running = batcher.submit([sequence], [3])
    time.sleep(0.1)
    queued = batcher.submit([sequence] * 3, [3] * 3)
    closer = threading.Thread(target=lambda: batcher.close(drain=False))
    closer.start()
    time.sleep(0.1)
    with pytest.raises(RuntimeError, match="stopped before"):
        queued.future.result(timeout=5)
    gate.set()
    closer.join(30)
    assert np.asarray(running.future.result(timeout=0)).shape == (1, tiny_encoder.n_embd)  # the run finished
