"""LangChain and LlamaIndex adapters, run inside the real frameworks on real inference."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
from texts import STDLIB_QUERIES, stdlib_sentences

from llamaembed import Index, Llama

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

DOCS = stdlib_sentences(120)
QUERIES = STDLIB_QUERIES[:5]


@pytest.fixture(scope="module")
def index(minilm: Llama) -> Index:
    built = Index(minilm)
    built.add(DOCS, ids=[f"doc{i}" for i in range(len(DOCS))],
              metadatas=[{"n": i, "kind": "stdlib"} for i in range(len(DOCS))])
    return built


def test_frameworks_are_imported_only_by_their_modules() -> None:
    code = (
        "import sys, llamaembed, llamaembed.store.index, llamaembed.cli;"
        "bad = [m for m in sys.modules if m.startswith(('langchain', 'llama_index', 'pymilvus'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_langchain_in_memory_store_finds_our_index_top_hit(minilm: Llama, index: Index) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from llamaembed.integrations.langchain import LlamaEmbedEmbeddings

    embeddings = LlamaEmbedEmbeddings(minilm)
    store = InMemoryVectorStore.from_texts(DOCS, embedding=embeddings)
    for query in QUERIES:
        found = store.similarity_search(query, k=1)[0].page_content
        assert found == index.search(query, 1, hybrid=False)[0].text, query
    # the vectors are the model's: query and document sides, unit length
    vector = np.asarray(embeddings.embed_query(QUERIES[0]))
    assert np.allclose(vector, minilm.embed_query(QUERIES[0]), atol=1e-6)
    rows = np.asarray(embeddings.embed_documents(DOCS[:3]))
    assert np.allclose(rows, minilm.embed_documents(DOCS[:3]), atol=1e-6)
    # async gives the same
    assert np.allclose(asyncio.run(embeddings.aembed_query(QUERIES[0])), vector, atol=1e-6)
    assert np.allclose(asyncio.run(embeddings.aembed_documents(DOCS[:3])), rows, atol=1e-6)


def test_langchain_prefixes_and_model_names(minilm_f16_path, minilm: Llama) -> None:  # type: ignore[no-untyped-def]
    from llamaembed.integrations.langchain import LlamaEmbedEmbeddings

    by_path = LlamaEmbedEmbeddings(str(minilm_f16_path))
    assert by_path.embedder is not minilm
    assert np.allclose(by_path.embed_query("hello"), minilm.embed_query("hello"), atol=1e-6)
    prefixed = LlamaEmbedEmbeddings(minilm, query_prefix="query: ", document_prefix="passage: ")
    assert np.allclose(prefixed.embed_query("hello"), minilm.embed("query: hello"), atol=1e-6)
    assert np.allclose(
        prefixed.embed_documents(["hello"])[0], minilm.embed("passage: hello"), atol=1e-6
    )
    with pytest.raises(TypeError, match="Embedder or a model name"):
        LlamaEmbedEmbeddings(42)  # type: ignore[arg-type]


def test_langchain_compressor_orders_as_rerank(tiny_reranker: Llama, minilm: Llama) -> None:
    from langchain_core.documents import Document

    from llamaembed.errors import RerankNotSupportedError
    from llamaembed.integrations.langchain import LlamaEmbedReranker

    query = QUERIES[1]
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(DOCS[:12])]
    compressor = LlamaEmbedReranker(tiny_reranker, top_n=5)
    kept = compressor.compress_documents(docs, query)
    expected = tiny_reranker.rerank(query, DOCS[:12], top_n=5)
    assert [d.page_content for d in kept] == [r.text for r in expected]
    assert [d.metadata["n"] for d in kept] == [r.index for r in expected]
    probabilities = 1 / (1 + np.exp(-np.array([r.score for r in expected])))
    assert np.allclose([d.metadata["relevance_score"] for d in kept], probabilities, atol=1e-6)
    assert docs[0].metadata == {"n": 0}  # the caller's documents are not changed
    again = asyncio.run(compressor.acompress_documents(docs, query))
    assert [d.page_content for d in again] == [d.page_content for d in kept]
    assert compressor.compress_documents([], query) == []
    with pytest.raises(RerankNotSupportedError, match="not a reranker"):
        LlamaEmbedReranker(minilm)


def test_langchain_retriever_returns_documents_with_metadata(
    index: Index, tiny_reranker: Llama
) -> None:
    from langchain_core.documents import Document

    from llamaembed.integrations.langchain import LlamaEmbedRetriever

    retriever = LlamaEmbedRetriever(index=index, k=3)
    for query in QUERIES:
        documents = retriever.invoke(query)
        hits = index.search(query, 3)  # hybrid by default, as the retriever
        assert all(isinstance(d, Document) for d in documents)
        assert [d.id for d in documents] == [h.id for h in hits]
        assert [d.page_content for d in documents] == [h.text for h in hits]
        for document, hit in zip(documents, hits, strict=True):
            assert document.metadata == {**hit.metadata, "id": hit.id, "score": hit.score}
            assert document.metadata["kind"] == "stdlib"
    only = LlamaEmbedRetriever(index=index, k=5, filter={"n": 7})
    assert [d.id for d in only.invoke(QUERIES[0])] == ["doc7"]
    dense = LlamaEmbedRetriever(index=index, k=3, hybrid=False)
    assert [d.id for d in asyncio.run(dense.ainvoke(QUERIES[2]))] == [
        h.id for h in index.search(QUERIES[2], 3, hybrid=False)
    ]
    reranked = LlamaEmbedRetriever(index=index, k=3, rerank_with=tiny_reranker)
    expected = index.search(QUERIES[3], 3, rerank_with=tiny_reranker)
    assert [d.id for d in reranked.invoke(QUERIES[3])] == [h.id for h in expected]


def test_llama_index_vector_store_index_finds_our_index_top_hit(
    minilm: Llama, index: Index
) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from llamaembed.integrations.llama_index import LlamaEmbedEmbedding

    embed_model = LlamaEmbedEmbedding(minilm, embed_batch_size=32)
    nodes = [TextNode(text=t, id_=f"doc{i}") for i, t in enumerate(DOCS)]
    vector_index = VectorStoreIndex(nodes, embed_model=embed_model)
    retriever = vector_index.as_retriever(similarity_top_k=3)
    for query in QUERIES:
        top = retriever.retrieve(query)[0]
        best = index.search(query, 1, hybrid=False)[0]
        assert top.node.node_id == best.id, query
        assert top.score == pytest.approx(best.score, abs=1e-4)
    vector = np.asarray(embed_model.get_query_embedding(QUERIES[0]))
    assert np.allclose(vector, minilm.embed_query(QUERIES[0]), atol=1e-6)
    batch = np.asarray(embed_model.get_text_embedding_batch(DOCS[:40]))
    # LlamaIndex sends batches of 32: batch make-up moves F16 vectors slightly
    cosines = np.sum(batch * minilm.embed_documents(DOCS[:40]), axis=1)
    assert cosines.min() >= 0.9999
    assert np.allclose(asyncio.run(embed_model.aget_query_embedding(QUERIES[0])), vector, atol=1e-6)
    in_async = np.asarray(asyncio.run(embed_model.aget_text_embedding_batch(DOCS[:5])))
    assert np.sum(in_async * batch[:5], axis=1).min() >= 0.9999
    assert embed_model.model_name == minilm.spec.name


def test_llama_index_postprocessor_orders_as_rerank(tiny_reranker: Llama) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from llamaembed.integrations.llama_index import LlamaEmbedRerank

    query = QUERIES[4]
    nodes = [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.0)
             for i, t in enumerate(DOCS[:10])]
    kept = LlamaEmbedRerank(tiny_reranker, top_n=4).postprocess_nodes(
        nodes, query_bundle=QueryBundle(query)
    )
    expected = tiny_reranker.rerank(query, DOCS[:10], top_n=4)
    assert [n.node.node_id for n in kept] == [f"n{r.index}" for r in expected]
    probabilities = 1 / (1 + np.exp(-np.array([r.score for r in expected])))
    assert np.allclose([n.score for n in kept], probabilities, atol=1e-6)
    with pytest.raises(ValueError, match="needs the query"):
        LlamaEmbedRerank(tiny_reranker).postprocess_nodes(nodes)
