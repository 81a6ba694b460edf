"""The embedding engine on real llama.cpp inference: pooling, batching, rerank, bad input."""

from __future__ import annotations

import asyncio
import logging
import pickle
import resource
import threading
from pathlib import Path

import numpy as np
import pytest
from reference import BertReference, cosine
from texts import HARD_CASES, stdlib_sentences

from llamaembed import (
    EmbeddingsDisabledError,
    EmbedOptions,
    EmptyInputError,
    InputTooLongError,
    Llama,
    LlamaParams,
    ModelLoadError,
    Pooling,
    PoolingError,
    RerankNotSupportedError,
)

SENTENCES = [
    "Rust is a memory-safe systems programming language.",
    "The cat sat on the mat.",
    "Vector search finds nearest neighbours quickly.",
    "a",
    "Ça va très bien, merci ! 東京 🤗",
]


@pytest.fixture(scope="module")
def minilm_none(minilm_f16_path: Path):  # type: ignore[no-untyped-def]
    with Llama(minilm_f16_path, pooling="none") as model:
        yield model


def test_pooling_modes_agree_with_token_vectors(minilm_f16_path: Path, minilm_none: Llama) -> None:
    tokens = minilm_none.embed_texts(SENTENCES, normalize=False)
    assert [m.shape for m in tokens] == [
        (len(minilm_none.tokenize(s)), 384) for s in SENTENCES
    ]
    for pooling, select in (
        ("cls", lambda m: m[0]),
        ("mean", lambda m: m.mean(0)),
        ("last", lambda m: m[-1]),
    ):
        with Llama(minilm_f16_path, pooling=pooling) as model:
            pooled = model.embed_texts(SENTENCES, normalize=False)
        for matrix, vector in zip(tokens, pooled, strict=True):
            assert cosine(select(matrix), vector) >= 0.99999, pooling


def test_none_pooling_rows_do_not_depend_on_batch(minilm_none: Llama) -> None:
    batch = minilm_none.embed_texts(SENTENCES)
    for text, matrix in zip(SENTENCES, batch, strict=True):
        alone = minilm_none.embed(text)
        assert alone.shape == matrix.shape
        assert min(cosine(a, b) for a, b in zip(alone, matrix, strict=True)) >= 0.99999


def test_start_token_false_matches_reference(
    minilm: Llama, minilm_reference: BertReference, hf_tokenizer
) -> None:  # type: ignore[no-untyped-def]
    options = EmbedOptions(start_token=False)
    vectors = minilm.embed_with_options(SENTENCES, options)
    for text, vector in zip(SENTENCES, vectors, strict=True):
        ids = hf_tokenizer.encode(text).ids[1:]  # without [CLS]
        assert cosine(vector, minilm_reference.embed(ids, "mean")) >= 0.9999
        with_cls = minilm.embed(text)
        assert cosine(vector, with_cls) < 0.99999  # the option really changes the input


def test_embed_shapes_and_normalisation(minilm: Llama) -> None:
    one = minilm.embed("hello")
    assert one.shape == (384,) and one.dtype == np.float32
    assert abs(float(np.linalg.norm(one)) - 1) < 1e-5
    many = minilm.embed_texts(["hello", "world"])
    assert many.shape == (2, 384) and many.dtype == np.float32
    raw = minilm.embed_with_options("hello", EmbedOptions(normalize=False))
    assert raw.ndim == 1 and abs(float(np.linalg.norm(raw)) - 1) > 0.1
    assert cosine(raw, one) > 0.99999
    assert minilm.embed_texts([]).shape == (0, 384)
    # a similar sentence is closer than an unrelated one
    a, b, c = minilm.embed_texts(["A cat sits on a mat", "A kitten rests on a rug", "Stock prices fell"])
    assert a @ b > a @ c + 0.3


def test_batch_invariance_mixed_lengths(minilm: Llama) -> None:
    long_text = " ".join(stdlib_sentences(400))
    long_ids = minilm.tokenize(long_text)[:499]
    texts = ["a", "I", long_ids.size and minilm.detokenize(long_ids[1:]), *SENTENCES,
             *stdlib_sentences(40)]
    lengths = [len(minilm.tokenize(t)) for t in texts]
    assert min(lengths) == 3 and max(lengths) >= 480  # [CLS] a [SEP] … ~500 tokens
    together = minilm.embed_texts(texts)
    for text, vector in zip(texts, together, strict=True):
        assert cosine(minilm.embed(text), vector) >= 0.99999, text[:40]


def test_batching_preserves_input_order_and_batch_size(minilm: Llama) -> None:
    texts = stdlib_sentences(60)
    full = minilm.embed_texts(texts)
    small = minilm.embed_texts(texts, batch_size=3)
    reversed_ = minilm.embed_texts(texts[::-1])[::-1]
    assert np.min(np.sum(full * small, axis=1)) >= 0.99999
    assert np.min(np.sum(full * reversed_, axis=1)) >= 0.99999
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            minilm.embed_texts(texts, batch_size=bad)  # type: ignore[arg-type]


def test_progress_bar(minilm: Llama, capsys: pytest.CaptureFixture[str]) -> None:
    minilm.embed_texts(stdlib_sentences(10), show_progress=True)
    assert "10/10" in capsys.readouterr().err


def test_default_pooling_from_gguf_and_warning(
    minilm_f16_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llamaembed"):
        with Llama(minilm_f16_path) as model:
            assert model.pooling is Pooling.MEAN
        assert not caplog.records
        with Llama.load(LlamaParams(str(minilm_f16_path)).with_pooling(Pooling.CLS)) as model:
            assert model.pooling is Pooling.CLS
    assert any("mean" in r.message and "cls" in r.message for r in caplog.records)


# ------------------------------------------------------------------ long input
def test_long_input_truncated_with_warning(minilm: Llama, caplog: pytest.LogCaptureFixture) -> None:
    text = "memory safety " * 800
    with caplog.at_level(logging.WARNING, logger="llamaembed"):
        vector = minilm.embed(text)
    assert "1 of 1 texts were longer than 512 tokens" in caplog.text
    ids = minilm.tokenize(text)
    kept = np.concatenate([ids[:511], ids[-1:]])
    assert kept[-1] == 102  # the closing [SEP] is kept
    with Llama(minilm.model_path, pooling="none") as none_model:
        rows = none_model.embed(text, normalize=False)
    assert rows.shape == (512, 384)
    assert cosine(rows.mean(0), vector) >= 0.99999


def test_long_input_error_when_truncation_off(minilm: Llama) -> None:
    with pytest.raises(InputTooLongError) as info:
        minilm.embed_texts(["short", "word " * 1000], truncate=False)
    assert (info.value.index, info.value.limit) == (1, 512)
    assert info.value.n_tokens == 1002
    assert "1002 tokens" in str(info.value)


# ------------------------------------------------------------------ rerank
def test_rerank_top_n_sorted(tiny_reranker: Llama) -> None:
    docs = ["rust code is safe", "the cat runs", "memory safe systems programming", "a dog"]
    scores = tiny_reranker.rerank("rust memory safety", docs)
    assert scores.shape == (4,) and scores.dtype == np.float32
    top = tiny_reranker.rerank("rust memory safety", docs, top_n=2)
    order = np.argsort(-scores)
    assert [r.index for r in top] == order[:2].tolist()
    assert [r.text for r in top] == [docs[i] for i in order[:2]]
    assert top[0].score >= top[1].score
    probs = tiny_reranker.rerank("rust memory safety", docs, activation="sigmoid")
    assert np.allclose(probs, 1 / (1 + np.exp(-scores)), atol=1e-6)
    assert tiny_reranker.rerank("q", []).shape == (0,)


def test_rerank_long_pair_truncates_document(tiny_reranker: Llama) -> None:
    scores = tiny_reranker.rerank("rust memory", ["the cat runs " * 200, "rust"])
    assert np.all(np.isfinite(scores))


def test_rerank_on_bi_encoder_raises(minilm: Llama) -> None:
    with pytest.raises(RerankNotSupportedError, match="bi-encoder"):
        minilm.rerank("query", ["doc"])


def test_rank_pooling_on_bi_encoder_refused(minilm_f16_path: Path) -> None:
    with pytest.raises(RerankNotSupportedError, match="no classification head"):
        Llama(minilm_f16_path, pooling="rank")


def test_embed_on_cross_encoder_raises(tiny_reranker: Llama) -> None:
    with pytest.raises(PoolingError, match="cross-encoder"):
        tiny_reranker.embed("hello")


# ------------------------------------------------------------------ decoder
def test_smollm2_last_pooling(smollm2_path: Path) -> None:
    with Llama(smollm2_path, pooling="last") as model:
        assert model.architecture == "llama" and model.pooling is Pooling.LAST
        vectors = model.embed_texts(["The capital of France is Paris.", "hello", "Hi there"])
        assert vectors.shape == (3, model.n_embd) and np.all(np.isfinite(vectors))
        alone = model.embed("hello")
        assert cosine(alone, vectors[1]) >= 0.9999  # quantised Q4_1 kernels, batch of 3
    with Llama(smollm2_path, pooling="none") as model:
        rows = model.embed("hello", normalize=False)
    with Llama(smollm2_path, pooling="last") as model:
        assert cosine(rows[-1], model.embed("hello", normalize=False)) >= 0.9999


# ------------------------------------------------------------------ concurrency
def test_threads_give_sequential_results(minilm: Llama) -> None:
    texts = stdlib_sentences(16)
    sequential = [minilm.embed_texts(texts[i::8]) for i in range(8)]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i] = minilm.embed_texts(texts[i::8])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(8):
        np.testing.assert_allclose(results[i], sequential[i], atol=1e-6)


def test_async_variants_inside_running_loop(minilm: Llama, tiny_reranker: Llama) -> None:
    async def main() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        one, many, scores = await asyncio.gather(
            minilm.aembed("hello"),
            minilm.aembed_texts(stdlib_sentences(30)),
            tiny_reranker.arerank("rust", ["rust code", "cat"]),
        )
        done.set()
        await task
        return one, many, scores, ticks

    one, many, scores, ticks = asyncio.run(main())
    assert cosine(one, minilm.embed("hello")) >= 0.99999
    assert many.shape == (30, 384) and scores.shape == (2,)
    assert ticks > 1  # the event loop kept running while inference happened


# ------------------------------------------------------------------ lifetime
def test_close_and_context_manager(minilm_f16_path: Path) -> None:
    with Llama(minilm_f16_path) as model:
        model.embed("x")
    with pytest.raises(ModelLoadError, match="closed"):
        model.embed("x")
    model.close()  # twice is fine


def test_pickle_reopens_from_params(minilm_f16_path: Path, minilm: Llama) -> None:
    params = LlamaParams(str(minilm_f16_path)).with_n_threads(1).with_n_batch(64)
    with Llama.load(params) as model:
        clone = pickle.loads(pickle.dumps(model))
    try:
        assert clone.params == params
        assert cosine(clone.embed("hello"), minilm.embed("hello")) >= 0.99999
    finally:
        clone.close()


def test_embeddings_disabled(minilm_f16_path: Path) -> None:
    with Llama(minilm_f16_path, embeddings=False) as model:
        assert model.tokenize("hi").tolist() == [101, 7632, 102]
        with pytest.raises(EmbeddingsDisabledError):
            model.embed("hi")


def test_fingerprint_identifies_model(minilm_f16_path: Path, minilm_quant_path) -> None:  # type: ignore[no-untyped-def]
    with Llama(minilm_f16_path) as a, Llama(minilm_f16_path) as b:
        assert a.fingerprint == b.fingerprint
    with Llama(minilm_quant_path("q8_0")) as c, Llama(minilm_f16_path, pooling="cls") as d:
        assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


# ------------------------------------------------------------------ bad input
def test_non_string_inputs_name_their_index(minilm: Llama) -> None:
    with pytest.raises(TypeError, match="index 2 is int"):
        minilm.embed_texts(["a", "b", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="index 0 is bytes"):
        minilm.embed_texts([b"bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single string"):
        minilm.embed_texts("not a list")
    with pytest.raises(TypeError):
        minilm.embed(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="index 1"):
        minilm.embed_with_options(["ok", 1.5], EmbedOptions())  # type: ignore[list-item]


@pytest.mark.parametrize(
    "text",
    ["", "   \t\n ", "NUL \x00 byte \x00", "lone \ud800 surrogate \udfff", "🤗🚀🦙" * 50,
     *HARD_CASES[:12]],
)
def test_odd_texts_give_unit_vectors(minilm: Llama, text: str) -> None:
    vector = minilm.embed(text)
    assert vector.shape == (384,) and np.all(np.isfinite(vector))
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_empty_text_equals_cls_sep(minilm: Llama, minilm_reference: BertReference) -> None:
    assert cosine(minilm.embed(""), minilm_reference.embed([101, 102])) >= 0.9999
    assert cosine(minilm.embed(""), minilm.embed("   ")) >= 0.99999


def test_one_megabyte_text(minilm: Llama) -> None:
    text = ("All work and no play makes Jack a dull boy. 東京 🤗 " * 20000)[:1_000_000]
    vector = minilm.embed(text)
    assert np.all(np.isfinite(vector))
    with pytest.raises(InputTooLongError):
        minilm.embed(text, truncate=False)


_SMALL_CONTEXTS = r"""
import json, sys
import numpy as np
from llamaembed import Llama
path, pooling, n_ctx, n_batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = ["hello world", "a", "b c", "x y z w", "one two three four five six seven"] * 20
with Llama(path, pooling=pooling, n_ctx=n_ctx, n_batch=n_batch) as model:
    batch = model.embed_texts(texts)
    alone = np.stack([model.embed(t) for t in texts[:5]])
with Llama(path, pooling=pooling) as model:
    default = np.stack([model.embed(t) for t in texts[:4]])  # all fit 8 tokens
print(json.dumps({"shape": list(batch.shape),
                  "batch_vs_alone": float(np.min(np.sum(batch[:5] * alone, axis=1))),
                  "vs_default": float(np.min(np.sum(batch[:4] * default, axis=1)))}))
"""


@pytest.mark.parametrize(("n_ctx", "n_batch"), [(8, 8), (16, 8), (8, 16), (32, 128)])
def test_small_contexts_run(
    minilm_f16_path: Path, smollm2_path: Path, n_ctx: int, n_batch: int
) -> None:
    """A context smaller than n_seq_max (64) or than n_batch works for encoders and decoders.

    llama.cpp aborted the process (GGML_ASSERT in output_reserve) when n_seq_max
    exceeded the micro-batch, and a decoder's n_batch is cut to n_ctx: run in a child
    process so that an abort fails this test alone.
    """
    import json
    import subprocess
    import sys

    for path, pooling, floor in ((minilm_f16_path, "mean", 0.9999), (smollm2_path, "last", 0.99)):
        out = subprocess.run(
            [sys.executable, "-c", _SMALL_CONTEXTS, str(path), pooling, str(n_ctx), str(n_batch)],
            capture_output=True, text=True, timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["shape"][0] == 100
        assert result["batch_vs_alone"] >= floor, (path.name, result)
        assert result["vs_default"] >= floor, (path.name, result)


def test_empty_decoder_input_is_our_error(smollm2_path: Path) -> None:
    with Llama(smollm2_path, pooling="last") as model:
        if model._model.vocab.add_bos:
            assert np.all(np.isfinite(model.embed("")))
        else:
            with pytest.raises(EmptyInputError, match="index 0"):
                model.embed("")


def test_memory_flat_over_20000_calls(tiny_encoder_path: Path, tiny_reranker: Llama) -> None:
    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with Llama(tiny_encoder_path) as model:
        for i in range(500):
            model.embed(f"warm up {i}")
        tiny_reranker.rerank("warm", ["up"])
        before = rss_mb()
        for i in range(20_000):
            model.embed(f"the cat runs {i % 97}")
            if i % 100 == 0:
                tiny_reranker.rerank("rust", ["rust code", f"cat {i}"])
        after = rss_mb()
    assert after - before < 50, (before, after)


def _with_rerank_template(source: Path, target: Path, template: str) -> Path:
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    writer = gguf.GGUFWriter(target, "bert")
    copy_with_new_metadata(
        gguf.GGUFReader(source), writer,
        {"tokenizer.chat_template.rerank": MetadataDetails(gguf.GGUFValueType.STRING, template)},
        [],
    )
    return target


def test_rerank_template_from_gguf(tiny_reranker_path: Path, tiny_reranker_folder: Path,
                                   tmp_path: Path) -> None:
    from reference import BertReference
    from tokenizers import Tokenizer

    query, docs = "rust memory", ["rust code is safe", "the cat runs", "hello world"]
    same = _with_rerank_template(tiny_reranker_path, tmp_path / "t1.gguf",
                                 "[CLS]{query}[SEP]{document}[SEP]")
    other = _with_rerank_template(tiny_reranker_path, tmp_path / "t2.gguf",
                                  "[CLS]{document} {query}[SEP]")
    # A template is a flat prompt, as in llama.cpp's server: every token is type 0.
    tokenizer = Tokenizer.from_file(str(tiny_reranker_folder / "tokenizer.json"))
    reference = BertReference(tiny_reranker_folder)
    expected = np.array([
        reference.classify(ids := tokenizer.encode(query, d).ids, [0] * len(ids))[0] for d in docs
    ])
    with Llama(same, flash_attn=False) as templated:  # precision is tested in test_convert
        assert templated._model.rerank_template == "[CLS]{query}[SEP]{document}[SEP]"
        assert np.max(np.abs(templated.rerank(query, docs) - expected)) <= 1e-3
    with Llama(other, flash_attn=False) as templated:
        assert np.max(np.abs(templated.rerank(query, docs) - expected)) > 1e-2


def test_llama_cpp_log_is_quiet_and_forwarded(
    minilm_f16_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with Llama(minilm_f16_path) as model:
        model.embed("hello")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # nothing written by llama.cpp itself
    with caplog.at_level(logging.DEBUG, logger="llamaembed.engine._native"):
        with Llama(minilm_f16_path) as model:
            model.embed("hello")
    assert any("llama" in r.getMessage() for r in caplog.records
               if r.name == "llamaembed.engine._native")


def test_q8_0_vectors_barely_depend_on_batch_make_up(minilm_quant_path) -> None:  # type: ignore[no-untyped-def]
    """Quantised kernels differ with the batch size, so a text's Q8_0 vector moves a little
    with the texts it shares a batch with (F16 does not). The bound holds for the kernels
    of this machine, AMX ones included where the probe lets them run."""
    texts = stdlib_sentences(200)
    with Llama(minilm_quant_path("q8_0")) as model:
        together = model.embed_texts(texts)
        alone = np.stack([model.embed(t) for t in texts])
        halves = np.concatenate([model.embed_texts(texts[1::2]), model.embed_texts(texts[0::2])])
    order = [*range(1, len(texts), 2), *range(0, len(texts), 2)]
    shuffled = np.empty_like(halves)
    shuffled[order] = halves
    assert float(np.min(np.sum(together * alone, axis=1))) >= 0.999
    assert float(np.min(np.sum(together * shuffled, axis=1))) >= 0.999
