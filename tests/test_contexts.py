"""A large batch spread over two llama.cpp contexts: same results, one context for one query."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from texts import stdlib_sentences

from llamaembed import Llama, LlamaParams
from llamaembed.engine.contexts import ContextPool, run_split, split_threads
from llamaembed.engine.hardware import choose_contexts


def test_split_threads_and_rule() -> None:
    assert split_threads(2, 2) == [1, 1]
    assert split_threads(5, 2) == [3, 2]
    assert split_threads(1, 2) == [1]  # never more contexts than threads
    assert split_threads(8, 1) == [8]
    assert choose_contexts(2) == 2
    assert choose_contexts(8) == 2
    assert choose_contexts(1) == 1
    assert choose_contexts(16, gpu=True) == 1
    with pytest.raises(ValueError, match="n_contexts"):
        LlamaParams("m.gguf", n_contexts=-1)


class _Recorder:
    """A stand-in context for the queue's wiring: records which batches it ran."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.ran: list[int] = []
        self.threads = 0
        self.fail_on = fail_on
        self.closed = False

    def set_threads(self, n: int) -> None:
        self.threads = n

    def close(self) -> None:
        self.closed = True


def test_queue_runs_every_batch_once_and_raises_a_workers_error() -> None:
    made: list[_Recorder] = []

    def factory() -> _Recorder:
        made.append(_Recorder())
        return made[-1]

    pool = ContextPool(factory, threads=2, size=2)
    assert [c.threads for c in pool.workers(1)] == [2] and pool.opened == 1
    workers = pool.workers(10)
    assert pool.opened == 2 and [c.threads for c in workers] == [1, 1]
    seen: list[int] = []
    lock = threading.Lock()

    def run_one(context: _Recorder, i: int) -> None:
        context.ran.append(i)
        with lock:
            seen.append(i)

    run_split(workers, 10, run_one)
    assert sorted(seen) == list(range(10))
    assert sorted(made[0].ran + made[1].ran) == list(range(10))

    def failing(context: _Recorder, i: int) -> None:
        if i == 3:
            raise RuntimeError("batch 3 failed")

    with pytest.raises(RuntimeError, match="batch 3 failed"):
        run_split(workers, 10, failing)
    pool.close()
    assert all(c.closed for c in made) and pool.opened == 0


@pytest.fixture(scope="module")
def two(minilm_f16_path: Path) -> Llama:
    with Llama(minilm_f16_path, n_threads=2, n_contexts=2) as model:
        yield model


@pytest.fixture(scope="module")
def one(minilm_f16_path: Path) -> Llama:
    with Llama(minilm_f16_path, n_threads=2, n_contexts=1) as model:
        yield model


def test_single_query_keeps_one_context_and_a_batch_opens_two(minilm_f16_path: Path) -> None:
    with Llama(minilm_f16_path, n_threads=2, n_contexts=2) as model:
        model.embed("one query")
        model.embed_texts(["a", "b", "c"])  # one micro-batch
        assert model.contexts_open == 1
        model.embed_texts(stdlib_sentences(60))  # several micro-batches
        assert model.contexts_open == 2
    with Llama(minilm_f16_path, n_threads=2, n_contexts=1) as model:
        model.embed_texts(stdlib_sentences(60))
        assert model.contexts_open == 1
    with Llama(minilm_f16_path, n_threads=1) as model:  # the rule: one thread, one context
        model.embed_texts(stdlib_sentences(60))
        assert model.contexts_open == 1


def test_two_contexts_give_one_contexts_vectors(one: Llama, two: Llama) -> None:
    # F16 on the same micro-batches: the contexts differ only in their thread counts.
    texts = stdlib_sentences(300)
    long = [" ".join(texts[i : i + 12]) for i in range(0, 240, 12)]
    for batch in (texts, long, texts[:40] + long[:5]):
        a, b = one.embed_texts(batch), two.embed_texts(batch)
        assert two.contexts_open == 2
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
        singles = np.stack([one.embed(t) for t in batch[:8]])
        np.testing.assert_allclose(b[:8], singles, rtol=0, atol=2e-3)  # batch make-up


def test_two_contexts_for_token_vectors_and_rerank(
    minilm_f16_path: Path, tiny_reranker_path: Path
) -> None:
    texts = stdlib_sentences(120)
    with (
        Llama(minilm_f16_path, pooling="none", n_contexts=1) as a,
        Llama(minilm_f16_path, pooling="none", n_contexts=2) as b,
    ):
        rows_a, rows_b = a.embed_texts(texts), b.embed_texts(texts)
        assert b.contexts_open == 2
        for x, y in zip(rows_a, rows_b, strict=True):
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-6)
    docs = [f"{t} {t}" for t in texts]
    with (
        Llama(tiny_reranker_path, n_contexts=1) as a,
        Llama(tiny_reranker_path, n_contexts=2) as b,
    ):
        np.testing.assert_allclose(b.rerank("a query", docs), a.rerank("a query", docs), atol=1e-6)
        assert b.contexts_open == 2


def test_calls_from_several_threads_on_two_contexts(one: Llama, two: Llama) -> None:
    texts = stdlib_sentences(200)
    parts = [texts[i::4] for i in range(4)]
    expected = [one.embed_texts(p) for p in parts]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(2):
            results[i] = two.embed_texts(parts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_allclose(results[i], expected[i], rtol=0, atol=1e-6)


def test_the_servers_batch_path_and_bge_m3_tokens_use_two_contexts(
    one: Llama, minilm_f16_path: Path, tiny_m3_path: Path
) -> None:
    from llamaembed.outputs import ModelInput, Want

    texts = stdlib_sentences(100)
    with Llama(minilm_f16_path, n_threads=2) as auto:  # the rule: two contexts on 2 threads
        inputs = [ModelInput(t) for t in auto.prepare_texts(texts)]
        rows = np.stack([o.pooled for o in auto.forward(inputs)])
        assert auto.contexts_open == 2
    expected = np.stack([o.pooled for o in one.forward(inputs)])
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-6)
    with (
        Llama(tiny_m3_path, n_threads=2, n_contexts=1) as a,
        Llama(tiny_m3_path, n_threads=2) as b,
    ):
        want = Want.POOLED | Want.SPARSE | Want.COLBERT
        out_a = a.forward([ModelInput(t, want) for t in a.prepare_texts(texts)])
        out_b = b.forward([ModelInput(t, want) for t in b.prepare_texts(texts)])
        assert b.contexts_open == 1 + 2  # the pooled context, and two token-level ones
        for x, y in zip(out_a, out_b, strict=True):
            np.testing.assert_allclose(y.colbert, x.colbert, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(y.sparse.indices, x.sparse.indices)
            np.testing.assert_allclose(y.sparse.values, x.sparse.values, rtol=0, atol=1e-6)
