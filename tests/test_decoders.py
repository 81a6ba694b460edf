"""Decoder-era models: Qwen3-Embedding, Qwen3-Reranker, gte-Qwen2 and EmbeddingGemma.

Tiny random models are built with transformers / sentence-transformers, converted with
llama.cpp's own converter (``llamaembed.conversion.llama_cpp``) and compared with the
reference forward pass: sentence-transformers' ``encode`` (transformers underneath, with
each model's own pooling, Dense layers and prompts) for the embedders, and transformers'
next-token logits for the reranker's P("yes").
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from texts import HARD_CASES, stdlib_sentences
from tiny_decoders import (
    GEMMA_DOCUMENT_PROMPT,
    GEMMA_QUERY_PROMPT,
    QWEN_QUERY_PROMPT,
)

from llamaembed import Index, Llama, Pooling
from llamaembed.cli import main
from llamaembed.conversion.llama_cpp import convert_with_llama_cpp

# Mixed lengths (a few past the tiny Gemma's sliding window of 8 tokens), accents, CJK.
TEXTS = [t for t in HARD_CASES if t.strip()][:12] + stdlib_sentences(12) + [
    "a much longer text about many things " * 12,
    "yes",
]


def st_model(folder: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def variant(source: Path, folder: Path, gguf: Path, change, pre_tokenizer: str | None = None) -> Path:  # type: ignore[no-untyped-def]
    """Copy a tiny model's folder to ``folder``, ``change`` it, convert it to ``gguf`` (F32)."""
    shutil.copytree(source, folder)
    change(folder)
    return convert_with_llama_cpp(folder, gguf, outtype="f32", pre_tokenizer=pre_tokenizer)


def edit_json(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a JSON file with ``edit(data)``'s result."""
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


# ------------------------------------------------------------------ embedders
@pytest.mark.parametrize("which", ["tiny_qwen3", "tiny_qwen2", "tiny_gemma"])
def test_embedder_equals_sentence_transformers(which: str, request: pytest.FixtureRequest) -> None:
    folder, gguf = request.getfixturevalue(which)
    reference = st_model(folder)
    want = reference.encode(TEXTS, batch_size=8)
    with Llama(gguf, flash_attn=False) as model:
        expected = Pooling.MEAN if which == "tiny_gemma" else Pooling.LAST
        assert model.pooling is expected and model.gguf_pooling is expected
        for text in TEXTS:  # llama.cpp splits text as Hugging Face does
            assert model.tokenize(text).tolist() == reference.tokenizer(text)["input_ids"], text
        got = model.embed_texts(TEXTS)
    assert got.shape == want.shape
    assert row_cosines(got, want).min() >= 0.999


@pytest.mark.parametrize("which", ["tiny_qwen3", "tiny_qwen2"])
def test_the_vocabulary_projection_is_skipped_with_equal_vectors(
    which: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Last-token vectors are read at the final norm; the graph ends there. The reference
    # is sentence-transformers, and llama.cpp's own whole graph (LLAMAEMBED_FULL_GRAPH=1).
    folder, gguf = request.getfixturevalue(which)
    texts = TEXTS + stdlib_sentences(60)
    want = st_model(folder).encode(texts, batch_size=8)
    with Llama(gguf, flash_attn=False) as model:
        got = model.embed_texts(texts)
        one = model.embed(texts[0])
        assert model.projection_skips >= 2  # several micro-batches, each ended early
    assert row_cosines(got, want).min() >= 0.999
    monkeypatch.setenv("LLAMAEMBED_FULL_GRAPH", "1")
    with Llama(gguf, flash_attn=False) as full:
        whole = full.embed_texts(texts)
        assert full.projection_skips == 0
        np.testing.assert_allclose(full.embed(texts[0]), one, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-5)


def test_smollm2_skips_the_projection_too(smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = stdlib_sentences(40)
    with Llama(smollm2_path, pooling="last", warn_pooling=False, append_eos=False) as model:
        got = model.embed_texts(texts)
        assert model.projection_skips >= 1
    monkeypatch.setenv("LLAMAEMBED_FULL_GRAPH", "1")
    with Llama(smollm2_path, pooling="last", warn_pooling=False, append_eos=False) as model:
        whole = model.embed_texts(texts)
    assert row_cosines(got, whole).min() >= 0.9999  # Q4_1: the same kernels, same batches
    with Llama(smollm2_path, pooling="mean", warn_pooling=False) as model:
        model.embed_texts(texts[:4])
        assert model.projection_skips == 0  # mean pooling keeps llama.cpp's whole graph


def test_qwen3_eos_comes_from_the_gguf(tiny_qwen3: tuple[Path, Path]) -> None:
    _, gguf = tiny_qwen3
    with Llama(gguf) as model:
        tokens = model.tokenize("hello there")
        assert model.detokenize(tokens[-1:], special=True) == "<|endoftext|>"
        # The catalogue's append_eos is a no-op where the GGUF already ends texts with it.
        with Llama(gguf, append_eos="<|endoftext|>") as explicit:
            assert explicit.embed_texts(TEXTS[:4]) == pytest.approx(model.embed_texts(TEXTS[:4]))


def test_causal_batching_keeps_texts_apart(tiny_qwen3: tuple[Path, Path]) -> None:
    _, gguf = tiny_qwen3
    with Llama(gguf, flash_attn=False) as model:
        together = model.embed_texts(TEXTS)
        alone = np.stack([model.embed(t) for t in TEXTS])
        reversed_batch = model.embed_texts(TEXTS[::-1])[::-1]
    assert row_cosines(together, alone).min() >= 0.99999
    assert row_cosines(together, reversed_batch).min() >= 0.99999


def test_flash_attention_stays_close(tiny_qwen3: tuple[Path, Path]) -> None:
    # llama.cpp's CPU flash attention rounds K and V to F16: still within the 0.999 bound.
    folder, gguf = tiny_qwen3
    want = st_model(folder).encode(TEXTS)
    with Llama(gguf) as model:
        assert model.params.flash_attn
        assert row_cosines(model.embed_texts(TEXTS), want).min() >= 0.999


@pytest.mark.parametrize("which", ["tiny_qwen3", "tiny_gemma"])
def test_prompts_are_applied_exactly_once(which: str, request: pytest.FixtureRequest) -> None:
    folder, gguf = request.getfixturevalue(which)
    reference = st_model(folder)
    query_prompt = QWEN_QUERY_PROMPT if which == "tiny_qwen3" else GEMMA_QUERY_PROMPT
    document_prompt = "" if which == "tiny_qwen3" else GEMMA_DOCUMENT_PROMPT
    assert reference.prompts["query"] == query_prompt
    queries, documents = TEXTS[:5], TEXTS[5:10]
    want_q = reference.encode(queries, prompt_name="query")
    want_d = reference.encode(documents, prompt_name="document" if document_prompt else None)
    twice = reference.encode([query_prompt + query_prompt + q for q in queries])
    with Llama(gguf, query_prefix=query_prompt, document_prefix=document_prompt) as model:
        got_q = np.stack([model.embed_query(q) for q in queries])
        assert row_cosines(got_q, want_q).min() >= 0.999
        assert row_cosines(got_q, twice).max() < 0.999  # a doubled prompt would show
        assert row_cosines(model.encode(queries, prompt_name="query"), want_q).min() >= 0.999
        assert row_cosines(model.embed_documents(documents), want_d).min() >= 0.999
        # The index embeds queries and documents through the same prompts, once.
        index = Index(model)
        index.add(documents)
        vector, _ = index.query_vector(queries[0])
        assert float(vector @ want_q[0]) >= 0.999
        hits = index.search(queries[0], k=5, hybrid=False)
        scores = {h.text: h.score for h in hits}
        for text, row in zip(documents, want_d, strict=True):
            assert scores[text] == pytest.approx(float(want_q[0] @ row), abs=2e-3)


def test_missing_eos_warns_and_append_eos_restores_it(
    tiny_qwen3: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A Qwen3-Embedding converted from a tokenizer that adds no <|endoftext|> (as the first
    # published GGUFs were): last-token pooling then reads the text's last word.
    folder = tmp_path / "no-eos"
    gguf = variant(tiny_qwen3[0], folder, tmp_path / "no-eos.gguf", lambda f: edit_json(
        f / "tokenizer.json", lambda t: {**t, "post_processor": None}), "qwen2")
    reference = st_model(folder)
    with_eos = reference.encode([t + "<|endoftext|>" for t in TEXTS])
    without = reference.encode(TEXTS)
    assert row_cosines(with_eos, without).min() < 0.99  # the token matters
    with caplog.at_level(logging.WARNING), Llama(gguf) as plain:
        assert "does not add an end-of-text token" in caplog.text
        assert row_cosines(plain.embed_texts(TEXTS), without).min() >= 0.999
    caplog.clear()
    for setting in ("<|endoftext|>", True):
        with caplog.at_level(logging.WARNING), Llama(gguf, append_eos=setting) as fixed:
            assert "end-of-text" not in caplog.text
            got = fixed.embed_texts(TEXTS)
            assert row_cosines(got, with_eos).min() >= 0.999
            # Truncation keeps the appended token last.
            long = fixed.tokenize("word " * 600)
            assert len(long) > fixed.n_ctx
            cut = fixed.prepare_texts(["word " * 600])[0]
            assert len(cut) == fixed.n_ctx and cut[:-1].tolist() == long[: fixed.n_ctx - 1].tolist()
            assert fixed.detokenize(cut[-1:], special=True) == "<|endoftext|>"
    with pytest.raises(ValueError, match="not one token"):
        Llama(gguf, append_eos="two tokens")
    caplog.clear()
    with caplog.at_level(logging.WARNING), Llama(gguf, append_eos=False):
        assert "end-of-text" not in caplog.text  # said on purpose: no warning
    # The server, given the GGUF by path, takes the token on its command line.
    import httpx
    from server_process import ServerProcess

    with ServerProcess(gguf, "--append-eos", "eos") as server:
        data = httpx.post(f"{server.url}/v1/embeddings", json={"input": TEXTS[:4]}).json()["data"]
        served = np.asarray([d["embedding"] for d in data])
        assert row_cosines(served, with_eos[:4]).min() >= 0.999
    with pytest.raises(ValueError, match="append_eos"):
        Llama(gguf, append_eos=3)  # type: ignore[arg-type]


def test_wrong_pooling_on_a_last_token_model_warns(
    tiny_qwen3: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), Llama(tiny_qwen3[1], pooling="mean"):
        assert "trained with last pooling but is opened with mean pooling" in caplog.text


def test_gemma_without_dense_layers_warns(
    tiny_gemma: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As the first published embeddinggemma GGUFs: the two projections left out.
    gguf = variant(tiny_gemma[0], tmp_path / "no-dense", tmp_path / "no-dense.gguf",
                   lambda f: edit_json(f / "modules.json", lambda modules: [
                       m for m in modules if not m["type"].endswith("Dense")]))
    with caplog.at_level(logging.WARNING), Llama(gguf):
        assert "no Dense projections" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING), Llama(tiny_gemma[1]):
        assert "Dense" not in caplog.text


# ------------------------------------------------------------------ Matryoshka
def test_matryoshka_is_the_cut_of_the_full_vector(tiny_qwen3: tuple[Path, Path]) -> None:
    _, gguf = tiny_qwen3
    with Llama(gguf) as model:
        full = model.embed_texts(TEXTS, normalize=False)
        for dims in (1, 16, 32, 64):
            cut = model.embed_texts(TEXTS, dimensions=dims)
            assert cut.shape == (len(TEXTS), dims) and cut.dtype == np.float32
            assert np.allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
            want = full[:, :dims] / np.linalg.norm(full[:, :dims], axis=1, keepdims=True)
            assert np.allclose(cut, want, atol=1e-5)
        assert model.embed(TEXTS[0], dimensions=8).shape == (8,)
        one = model.embed(TEXTS[0], normalize=False)[:8]
        assert model.encode(TEXTS[0], dimensions=8) == pytest.approx(one / np.linalg.norm(one), abs=1e-6)
        raw = model.embed_texts(TEXTS[:2], dimensions=8, normalize=False)
        full_2 = model.embed_texts(TEXTS[:2], normalize=False)
        assert np.allclose(raw, full_2[:, :8], atol=1e-6)  # cut, not re-normalised
        for bad in (0, 65, -1, 2.0, True):
            with pytest.raises(ValueError, match="dimensions"):
                model.embed_texts(TEXTS[:1], dimensions=bad)  # type: ignore[arg-type]


def test_index_records_dimensions(tiny_qwen3: tuple[Path, Path], tmp_path: Path) -> None:
    _, gguf = tiny_qwen3
    with Llama(gguf, query_prefix=QWEN_QUERY_PROMPT) as model:
        index = Index(model, dimensions=16)
        assert index.dim == 16
        index.add(TEXTS[:10])
        query = "a question about things"
        hits = index.search(query, k=3, hybrid=False)
        q = model.embed_query(query, dimensions=16)
        docs = model.embed_documents(TEXTS[:10], dimensions=16)
        best = np.argsort(-(docs @ q))[:3]
        assert [h.text for h in hits] == [TEXTS[i] for i in best]
        assert hits[0].score == pytest.approx(float(docs[best[0]] @ q), abs=1e-4)
        index.save(tmp_path / "idx")
        manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
        assert manifest["dimensions"] == 16 and manifest["dim"] == 16
        again = Index.load(tmp_path / "idx", model)
        assert again.dimensions == 16
        assert [h.id for h in again.search(query, k=3, hybrid=False)] == [h.id for h in hits]
        with pytest.raises(ValueError, match="dimensions"):
            Index(model, dimensions=65)


# ------------------------------------------------------------------ reranker
def reference_yes_probabilities(folder: Path, template: str, query: str, docs: list[str]):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = Qwen3ForCausalLM.from_pretrained(folder).eval()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    out = []
    for doc in docs:
        text = template.replace("{query}", query).replace("{document}", doc)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        out.append(float(torch.softmax(torch.stack([logits[yes], logits[no]]), 0)[0]))
    return np.asarray(out)


def test_qwen3_reranker_gives_yes_probabilities(tiny_qwen3_reranker: tuple[Path, Path]) -> None:
    folder, gguf = tiny_qwen3_reranker
    query, docs = "is rust memory safe", TEXTS[:10]
    with Llama(gguf) as model:
        assert model.pooling is Pooling.RANK and model.capabilities.rerank
        assert model.capabilities.rerank_probabilities and model.n_cls_out == 2
        template = model.metadata["tokenizer.chat_template.rerank"]
        assert "{query}" in template and "{document}" in template
        scores = model.rerank(query, docs)
        want = reference_yes_probabilities(folder, template, query, docs)
        assert np.abs(scores - want).max() <= 1e-3
        assert np.all((scores > 0) & (scores < 1))
        assert model.rerank(query, docs, activation="sigmoid") == pytest.approx(scores)
        top = model.rerank(query, docs, top_n=3)
        assert [r.index for r in top] == list(np.argsort(-want, kind="stable")[:3])
        with pytest.raises(Exception, match="cross-encoder"):
            model.embed("hello")


def test_qwen3_reranker_skips_the_projection_with_equal_scores(
    tiny_qwen3_reranker: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The yes/no head (cls.output, then softmax) is applied to the final norm's last row.
    folder, gguf = tiny_qwen3_reranker
    query, docs = "is rust memory safe", TEXTS + stdlib_sentences(40)
    with Llama(gguf) as model:
        scores = model.rerank(query, docs)
        assert model.projection_skips >= 1
        template = model.metadata["tokenizer.chat_template.rerank"]
    want = reference_yes_probabilities(folder, template, query, docs[:10])
    assert np.abs(scores[:10] - want).max() <= 1e-3
    monkeypatch.setenv("LLAMAEMBED_FULL_GRAPH", "1")
    with Llama(gguf) as full:
        whole = full.rerank(query, docs)
        assert full.projection_skips == 0
    np.testing.assert_allclose(scores, whole, rtol=0, atol=1e-5)


def test_index_reranks_with_qwen3_reranker(
    tiny_qwen3: tuple[Path, Path], tiny_qwen3_reranker: tuple[Path, Path]
) -> None:
    query, docs = "is rust memory safe", TEXTS[:8]
    with Llama(tiny_qwen3[1], query_prefix=QWEN_QUERY_PROMPT) as embedder, Llama(
        tiny_qwen3_reranker[1]
    ) as reranker:
        index = Index(embedder)
        index.add(docs)
        hits = index.search(query, k=4, rerank_with=reranker, candidates=8)
        want = reranker.rerank(query, docs)
        assert [h.text for h in hits] == [docs[i] for i in np.argsort(-want, kind="stable")[:4]]
        for hit in hits:
            assert hit.score == pytest.approx(float(want[docs.index(hit.text)]), abs=1e-5)


def test_a_qwen3_reranker_without_its_head_is_named(
    tiny_qwen3_reranker: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Converted as a plain Qwen3 (no README, a neutral name): no cls.output, no template.
    gguf = variant(tiny_qwen3_reranker[0], tmp_path / "plain",
                   tmp_path / "Qwen3-Reranker-0.6B-bad.gguf",
                   lambda f: (f / "README.md").unlink(), "qwen2")
    with caplog.at_level(logging.WARNING), Llama(gguf, append_eos=False) as model:
        assert "looks like a Qwen3-Reranker but has no yes/no head" in caplog.text
        with pytest.raises(Exception, match="cross-encoder"):
            model.rerank("q", ["d"])


# ------------------------------------------------------------------ CLI and conversion
def test_cli_converts_embeds_and_reranks(
    tiny_qwen3: tuple[Path, Path], tiny_qwen3_reranker: tuple[Path, Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.gguf"
    result = runner.invoke(main, ["convert", str(tiny_qwen3[0]), "-o", str(out), "--outtype",
                                  "f32", "--pre-tokenizer", "qwen2"])
    assert result.exit_code == 0, result.output
    with Llama(out) as a, Llama(tiny_qwen3[1]) as b:
        assert np.allclose(a.embed_texts(TEXTS[:3]), b.embed_texts(TEXTS[:3]), atol=1e-6)
        want = a.embed("a query", dimensions=8)
    # No --pre-tokenizer: llama.cpp does not know the tiny vocabulary's hash, and says so.
    result = runner.invoke(main, ["convert", str(tiny_qwen3[0]), "-o", str(tmp_path / "x.gguf")])
    assert result.exit_code == 1 and "Error: llama.cpp's converter failed" in result.output
    assert not (tmp_path / "x.gguf").exists()
    result = runner.invoke(main, ["convert", str(tiny_qwen3[0]), "-o", str(tmp_path / "y.gguf"),
                                  "--outtype", "f16", "--pooling", "cls"])
    assert result.exit_code == 1 and "pooling and name" in result.output
    result = runner.invoke(main, ["embed", "a query", "--model", str(out), "--dimensions", "8"])
    assert result.exit_code == 0, result.output
    plain = np.asarray(json.loads(result.output))
    assert plain.shape == (1, 8) and np.allclose(plain[0], want, atol=1e-6)
    result = runner.invoke(main, ["embed", "a query", "--model", str(out), "--dimensions", "65"])
    assert result.exit_code == 1 and "Error: dimensions must be between 1 and 64" in result.output
    result = runner.invoke(main, ["rerank", "is rust safe", "Rust is memory-safe.", "Cats purr.",
                                  "--model", str(tiny_qwen3_reranker[1]), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 2 and all(0 < r["score"] < 1 for r in rows)


def test_catalogue_entries_of_decoder_models() -> None:
    from llamaembed.hub.registry import catalogue

    entries, _ = catalogue()
    qwen = entries["qwen3-embedding-0.6b"]
    assert qwen.pooling is Pooling.LAST and qwen.append_eos == "<|endoftext|>"
    assert qwen.query_prefix == QWEN_QUERY_PROMPT  # the authors' default task
    assert qwen.query_prefix.startswith("Instruct: ") and qwen.query_prefix.endswith("\nQuery:")
    assert qwen.document_prefix == "" and qwen.dimensions[0] == 32 and qwen.dimensions[-1] == 1024
    gemma = entries["embeddinggemma-300m"]
    assert (gemma.query_prefix, gemma.document_prefix) == (GEMMA_QUERY_PROMPT, GEMMA_DOCUMENT_PROMPT)
    assert gemma.pooling is Pooling.MEAN and gemma.dimensions == (128, 256, 512, 768)
    assert entries["gte-qwen2-1.5b-instruct"].dimension == 1536
    reranker = entries["qwen3-reranker-0.6b"]
    assert reranker.kind == "rerank" and reranker.pooling is Pooling.RANK
    for name in ("qwen3-embedding-0.6b", "embeddinggemma-300m", "gte-qwen2-1.5b-instruct",
                 "qwen3-reranker-0.6b"):
        entry = entries[name]
        assert entry.license and entry.files and entry.verified is False


# ------------------------------------------------------------------ server
def test_server_embeds_and_reranks_with_decoder_models(
    tiny_qwen3: tuple[Path, Path], tiny_qwen3_reranker: tuple[Path, Path]
) -> None:
    import httpx
    from server_process import ServerProcess

    query, docs = "is rust memory safe", TEXTS[:6]
    with Llama(tiny_qwen3[1], query_prefix=QWEN_QUERY_PROMPT) as embedder:
        want_query = embedder.embed_query(query, dimensions=16)
        want_docs = embedder.embed_documents(docs)
    with Llama(tiny_qwen3_reranker[1]) as reranker:
        want_scores = reranker.rerank(query, docs)
    with ServerProcess(tiny_qwen3[1], "--rerank", tiny_qwen3_reranker[1], "--query-prefix",
                       QWEN_QUERY_PROMPT, "--append-eos", "<|endoftext|>") as server, httpx.Client(
                           base_url=server.url) as client:
        body = {"input": query, "input_type": "query", "dimensions": 16}
        got = client.post("/v1/embeddings", json=body).json()["data"][0]["embedding"]
        assert len(got) == 16 and float(np.asarray(got) @ want_query) >= 0.99999
        got_docs = client.post("/v1/embeddings", json={"input": docs}).json()["data"]
        assert row_cosines(np.asarray([d["embedding"] for d in got_docs]), want_docs).min() >= 0.99999
        response = client.post("/v1/rerank", json={"query": query, "documents": docs})
        assert response.status_code == 200, response.text
        for result in response.json()["results"]:  # P("yes"), not a sigmoid of it
            assert abs(result["relevance_score"] - want_scores[result["index"]]) < 1e-5
        bad = client.post("/v1/embeddings", json={"input": "x", "dimensions": 65})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "dimensions"


# ------------------------------------------------------------------ real model
def test_smollm2_is_a_decoder_embedder(smollm2_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # SmolLM2-135M-Instruct: a chat model, so no pooling key: last-token pooling by default,
    # and the warning that its GGUF adds no end-of-text token.
    with caplog.at_level(logging.WARNING), Llama(smollm2_path) as model:
        assert model.pooling is Pooling.LAST and model.gguf_pooling is None
        assert "does not add an end-of-text token" in caplog.text
        texts = ["The capital of France is Paris.", "Paris is France's capital city.",
                 "Photosynthesis turns light into chemical energy.", "hello"]
        vectors = model.embed_texts(texts)
        assert vectors.shape == (4, 576) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
        alone = np.stack([model.embed(t) for t in texts])
        assert row_cosines(vectors, alone).min() >= 0.999  # Q4_1: kernels vary with batch size
        cut = model.embed_texts(texts, dimensions=64)
        full = model.embed_texts(texts, normalize=False)[:, :64]
        assert np.allclose(cut, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5)
    with Llama(smollm2_path, append_eos=True) as ended:
        tokens = ended.prepare_texts(["hello"])[0]
        assert ended.detokenize(tokens[-1:], special=True) == "<|im_end|>"


@pytest.mark.parametrize("which", ["tiny_qwen2", "tiny_gemma"])
def test_other_decoders_through_cli_index_and_server(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import httpx
    from server_process import ServerProcess

    folder, gguf = request.getfixturevalue(which)
    want = st_model(folder).encode(TEXTS[:6])
    cut = want[:, :16] / np.linalg.norm(want[:, :16], axis=1, keepdims=True)
    result = CliRunner().invoke(main, ["embed", *TEXTS[:6], "--model", str(gguf),
                                       "--dimensions", "16"])
    assert result.exit_code == 0, result.output
    assert row_cosines(np.asarray(json.loads(result.output)), cut).min() >= 0.999
    with Llama(gguf) as model:
        index = Index(model, dimensions=16)
        index.add(TEXTS[:6])
        for i in (0, 3):
            hit = index.search(TEXTS[i], k=1, hybrid=False)[0]
            assert hit.text == TEXTS[i] and hit.score == pytest.approx(1.0, abs=1e-3)
    with ServerProcess(gguf) as server:
        body = {"input": TEXTS[:6], "dimensions": 16}
        data = httpx.post(f"{server.url}/v1/embeddings", json=body).json()["data"]
        assert row_cosines(np.asarray([d["embedding"] for d in data]), cut).min() >= 0.999
