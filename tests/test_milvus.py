"""MilvusStore against Milvus Lite: a real engine that pymilvus starts from a local file."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from texts import STDLIB_QUERIES, stdlib_sentences

from llamaembed import Index, IndexModelMismatchError, Llama, SearchIndexError
from llamaembed.store.keywords import BM25
from llamaembed.store.search import DEFAULT_RANKING

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from llamaembed.store.keywords import word_weights
from llamaembed.store.milvus import MilvusStore
from llamaembed.store.milvus_schema import milvus_filter, parse_store

DOCS = stdlib_sentences(300)
IDS = [f"doc{i}" for i in range(len(DOCS))]
METAS = [{"n": i, "odd": i % 2 == 1} for i in range(len(DOCS))]
QUERIES = STDLIB_QUERIES[:10]


@pytest.fixture(scope="module")
def reference(minilm: Llama) -> Index:
    index = Index(minilm)
    index.add(DOCS, METAS, IDS)
    return index


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory, minilm: Llama) -> Path:
    path = tmp_path_factory.mktemp("milvus") / "docs.db"
    with MilvusStore(minilm, uri=str(path), collection="docs") as store:
        assert store.add(DOCS, METAS, IDS) == IDS
    return path


def test_add_search_get_len_and_scores(store_file: Path, minilm: Llama, reference: Index) -> None:
    with MilvusStore(minilm, uri=str(store_file), collection="docs") as store:
        assert len(store) == len(DOCS)
        assert store.keywords == "bm25"
        hit = store.get("doc3")
        assert hit is not None and hit.text == DOCS[3] and hit.metadata == METAS[3]
        assert store.get("nope") is None and "doc3" in store and "nope" not in store
        for query in QUERIES:
            dense = store.search(query, 5, hybrid=False)
            ours = reference.search(query, 5, hybrid=False)
            assert [h.id for h in dense][:1] == [h.id for h in ours][:1], query
            # a vector search's score is the cosine, and similarity says the same
            assert np.allclose([h.score for h in dense], [h.similarity for h in dense], atol=1e-5)
            vector = minilm.embed_query(query)
            expected = [float(minilm.embed_documents([h.text])[0] @ vector) for h in dense]
            assert np.allclose([h.score for h in dense], expected, atol=1e-3)
        by_vector = store.search(minilm.embed_query(QUERIES[0]), 3)
        assert [h.id for h in by_vector] == [h.id for h in store.search(QUERIES[0], 3, hybrid=False)]


def test_top10_overlap_with_index(store_file: Path, minilm: Llama, reference: Index) -> None:
    with MilvusStore(minilm, uri=str(store_file), collection="docs") as store:
        for hybrid in (False, True):
            overlaps = []
            for query in QUERIES:
                ours = {h.id for h in reference.search(query, 10, hybrid=hybrid)}
                theirs = {h.id for h in store.search(query, 10, hybrid=hybrid)}
                overlaps.append(len(ours & theirs) / 10)
            assert np.mean(overlaps) >= 0.9, (hybrid, overlaps)


def test_hybrid_finds_a_rare_keyword_and_fuses_as_index_does(tmp_path: Path, minilm: Llama) -> None:
    docs = ["rust code is safe", "the cat runs", "memory safe systems programming", "part number XK-4471B fits the pump", "a dog runs fast", *DOCS[:60]]
    with MilvusStore(minilm, uri=str(tmp_path / "k.db"), collection="k") as store:
        store.add(docs)
        hybrid = store.search("which pump takes XK-4471B", 3)
        assert hybrid[0].text == docs[3]
        # fused scores: the cosine plus keyword bonuses; the dense cosine is kept apart
        assert hybrid[0].similarity is not None and 0 < hybrid[0].similarity <= 1.0001
        bonus = hybrid[0].score - hybrid[0].similarity
        # XK-4471B is written as code: the word side weighs identifier_keywords, not 0.04
        assert 0.01 < bonus <= DEFAULT_RANKING.identifier_keywords + 1e-6
        plain = store.search("which pump takes XK-4471B", 3, ranking=None)
        assert 0.01 < plain[0].score - plain[0].similarity <= BM25.weight + 1e-6
        filtered = store.search("pump", 5, filter={"n": 3})
        assert filtered == []  # no metadata at all here


def test_identifier_words_match_on_both_sides(tmp_path: Path, minilm: Llama) -> None:
    code = ["class APIRouter:\n    def include_router(self, other): ...", *DOCS[:40]]
    metas = [{"source": "/srv/app/routing.py"}] + [{} for _ in DOCS[:40]]
    with MilvusStore(minilm, uri=str(tmp_path / "w.db"), collection="w") as store:
        store.add(code, metadatas=metas)
        found = store.search("api router", 3, ranking=None)
        assert found[0].text == code[0]
        assert found[0].score - found[0].similarity > 0.01  # "api", "router" met APIRouter
        index = Index(minilm)
        index.add(code, metadatas=metas)
        mine = index.search("api router", 3, ranking=None)
        assert [h.text for h in mine] == [h.text for h in found]
        assert mine[0].score == pytest.approx(found[0].score, abs=0.02)


def test_filter_delete_reopen_and_replace(tmp_path: Path, minilm: Llama) -> None:
    path = str(tmp_path / "d.db")
    with MilvusStore(minilm, uri=path, collection="d") as store:
        store.add(DOCS[:50], METAS[:50], IDS[:50])
        odd = store.search(QUERIES[1], 10, filter={"odd": True})
        assert odd and all(h.metadata["odd"] for h in odd)
        # a list value matches any of its items (`search --glob`), inside the search
        some = store.search(QUERIES[1], 10, filter={"n": [3, 17, 41]})
        assert sorted(h.metadata["n"] for h in some) == [3, 17, 41]
        assert store.search(QUERIES[1], 10, filter={"n": []}) == []
        # a long list (`--glob` matching many files) is matched as ids: the same hits
        many = list(range(0, 50, 2))
        even = store.search(QUERIES[1], 10, filter={"n": many})
        assert len(even) == 10 and all(h.metadata["n"] % 2 == 0 for h in even)
        assert [h.id for h in even] == [h.id for h in store.search(QUERIES[1], 10,
                                                                   filter={"odd": False})]
        assert sorted(store.ids_where(n=7)) == ["doc7"]
        assert store.delete(["doc1", "doc2", "missing"]) == 2
        assert len(store) == 48 and store.get("doc1") is None
        store.add(["a replaced text"], [{"n": -1}], ["doc3"])
        assert len(store) == 48 and store.get("doc3").text == "a replaced text"  # type: ignore[union-attr]
        store.add(["fresh"])  # ids made up when not given
        assert len(store) == 49
    with MilvusStore(minilm, uri=path, collection="d") as reopened:
        assert len(reopened) == 49
        assert reopened.get("doc3").metadata == {"n": -1}  # type: ignore[union-attr]
        assert reopened.search(DOCS[10], 1, hybrid=False)[0].id == "doc10"
        assert dict(reopened.iter_metadata())["doc4"] == METAS[4]


def test_wrong_model_and_bad_input_are_refused(
    store_file: Path, minilm: Llama, tiny_encoder: Llama, tmp_path: Path
) -> None:
    with pytest.raises(IndexModelMismatchError, match="another model"):
        MilvusStore(tiny_encoder, uri=str(store_file), collection="docs")
    with pytest.raises(ValueError, match=r"ends in \.db"):
        MilvusStore(minilm, uri=str(tmp_path / "x.sqlite"))
    with pytest.raises(ValueError, match="collection name"):
        MilvusStore(minilm, uri=str(tmp_path / "x.db"), collection="bad-name")
    with MilvusStore(minilm, uri=str(tmp_path / "x.db"), collection="x") as store:
        with pytest.raises(ValueError, match="same length"):
            store.add(["a", "b"], ids=["1"])
        with pytest.raises(ValueError, match="unique"):
            store.add(["a", "b"], ids=["1", "1"])
        with pytest.raises(ValueError, match="65535 bytes"):
            store.add(["é" * 40_000])
        with pytest.raises(ValueError, match="filter keys"):
            store.search("x", filter={"a b": 1})
        with pytest.raises(ValueError, match="shape"):
            store.add_vectors(np.zeros((1, 3)), ["x"])
        assert len(store) == 0
    with pytest.raises(IndexModelMismatchError, match=r"dimensions|-d vectors"):
        MilvusStore(minilm, uri=str(store_file), collection="docs", dimensions=64)


def test_collection_not_ours_is_refused(tmp_path: Path, minilm: Llama) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path / "f.db"))
    client.create_collection("theirs", dimension=4)
    client.close()
    with pytest.raises(SearchIndexError, match="not made by llamaembed"):
        MilvusStore(minilm, uri=str(tmp_path / "f.db"), collection="theirs")


def test_parquet_bulk_load_equals_add(tmp_path: Path, minilm: Llama, minilm_f16_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llamaembed.distributed.ray import EmbedBatch
    from llamaembed.hub.spec import resolve_model

    actor = EmbedBatch(resolve_model(str(minilm_f16_path)), n_threads=2)
    folder = tmp_path / "embedded"
    folder.mkdir()
    for part in range(2):
        rows = range(part * 40, (part + 1) * 40)
        table = pa.table({"id": [IDS[i] for i in rows], "text": [DOCS[i] for i in rows],
                          "n": list(rows)})
        pq.write_table(actor(table), folder / f"part-{part}.parquet")
    actor.close()
    with MilvusStore(minilm, uri=str(tmp_path / "p.db"), collection="p") as store:
        assert store.add_parquet(folder) == 80
        assert len(store) == 80 and store.get("doc5").metadata == {"n": 5}  # type: ignore[union-attr]
        for query in QUERIES[:5]:
            assert store.search(query, 1)[0].id == store.search(query, 1)[0].id
        top = store.search(DOCS[17], 1, hybrid=False)[0]
        assert top.id == "doc17" and top.similarity == pytest.approx(1.0, abs=2e-3)
    from click.testing import CliRunner

    from llamaembed.cli import main

    loaded = CliRunner().invoke(main, ["index", "--from-parquet", str(folder),
                                       "--store", str(tmp_path / "cli.db")])
    assert loaded.exit_code == 0, loaded.output
    assert "indexed 80 rows from 2 Parquet files; 80 in" in loaded.stdout
    with MilvusStore(minilm, uri=str(tmp_path / "q.db"), collection="q", dimensions=64) as narrow:
        with pytest.raises(IndexModelMismatchError, match="-d"):
            narrow.add_parquet(folder)


def test_rerank_with_a_cross_encoder(store_file: Path, minilm: Llama, tiny_reranker: Llama) -> None:
    with MilvusStore(minilm, uri=str(store_file), collection="docs") as store:
        query = QUERIES[2]
        hits = store.search(query, 3, rerank_with=tiny_reranker)
        candidates = [h.text for h in store.search(query, 40)]
        scores = tiny_reranker.rerank(query, candidates)
        assert [h.text for h in hits] == [candidates[i] for i in np.argsort(-scores)[:3]]
        assert all(h.similarity is not None for h in hits)


def test_words_keywords_and_bge_m3_sparse(tmp_path: Path, minilm: Llama, tiny_m3: Llama) -> None:
    docs = ["part number XK-4471B fits the pump", "the cat runs", *DOCS[:40]]
    with MilvusStore(minilm, uri=str(tmp_path / "w.db"), collection="w", keywords="words") as store:
        store.add(docs)
        assert store.search("XK-4471B", 1)[0].text == docs[0]
        store.add(["the of and"])  # only stopwords: stored with a placeholder sparse row
    with MilvusStore(tiny_m3, uri=str(tmp_path / "m.db"), collection="m") as m3:
        assert m3.keywords == "sparse"
        m3.add(docs[:20], ids=[f"t{i}" for i in range(20)])
        reference = Index(tiny_m3)
        reference.add(docs[:20], ids=[f"t{i}" for i in range(20)])
        for query in ("pump part", "cat", DOCS[3]):
            ours = [h.id for h in reference.search(query, 5)]
            theirs = [h.id for h in m3.search(query, 5)]
            assert ours[0] == theirs[0], query


def test_pure_helpers() -> None:
    assert parse_store("milvus://db.internal:19530/notes") == ("http://db.internal:19530", "notes")
    assert parse_store("docs.db") == ("docs.db", "llamaembed")
    assert parse_store("docs.db#notes") == ("docs.db", "notes")
    for bad in ("milvus://host", "milvus:///c", "notes.txt"):
        with pytest.raises(ValueError):
            parse_store(bad)
    assert milvus_filter({"a": "x", "b": True, "n": 3}) == (
        'metadata["a"] == "x" and metadata["b"] == true and metadata["n"] == 3'
    )
    doc = word_weights("pump pump pump valve the", query=False)
    query = word_weights("pump Pump gasket", query=True)
    assert len(doc) == 2 and len(query) == 2 and set(query.values.tolist()) == {1.0}
    assert query.dot(doc) == pytest.approx(3 * 2.2 / 4.2)
    json.dumps(doc.to_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(word_weights("", query=True)) == 0


def test_langchain_retriever_over_milvus(store_file: Path, minilm: Llama) -> None:
    pytest.importorskip("langchain_core")
    from llamaembed.integrations.langchain import LlamaEmbedRetriever

    with MilvusStore(minilm, uri=str(store_file), collection="docs") as store:
        documents = LlamaEmbedRetriever(index=store, k=3).invoke(QUERIES[4])
        hits = store.search(QUERIES[4], 3)
        assert [d.id for d in documents] == [h.id for h in hits]
        assert documents[0].metadata["n"] == hits[0].metadata["n"]


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus standalone server (PyPI's `milvus`, v2.3.5) on a free port, over http."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    exe = shutil.which("milvus-server") or str(Path(sys.executable).parent / "milvus-server")
    if not Path(exe).exists():
        pytest.skip("no milvus-server (PyPI's `milvus`, in the test extra on Linux x86-64)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path_factory.mktemp("milvus-server")
    log = (data / "server.log").open("wb")
    server = subprocess.Popen([exe, "--data", str(data), "--proxy-port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + 120
        while True:
            try:
                MilvusClient(uri=uri, timeout=5).close()
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((data / "server.log").read_text()[-2000:]) from None
                time.sleep(1)
        yield uri
    finally:
        import psutil

        # the wrapper starts the server binary in a session of its own: stop the whole tree
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(tree, timeout=30)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        server.wait(timeout=10)
        log.close()


def test_a_milvus_server_over_http(milvus_server: str, minilm: Llama, tiny_encoder: Llama,
                                   reference: Index) -> None:
    # Milvus 2.3 predates sparse vectors (2.4) and BM25 functions (2.5): dense search only
    with MilvusStore(minilm, uri=milvus_server, collection="docs", keywords="none") as store:
        assert store.add(DOCS, METAS, IDS) == IDS
        assert len(store) == len(DOCS)  # strong consistency: a write is seen at once
        overlaps = [
            len({h.id for h in store.search(q, 10, hybrid=False)}
                & {h.id for h in reference.search(q, 10, hybrid=False)}) / 10
            for q in QUERIES
        ]
        assert np.mean(overlaps) >= 0.9, overlaps
        assert [h.id for h in store.search(QUERIES[0], 3)] == [
            h.id for h in store.search(QUERIES[0], 3, hybrid=False)]  # no keyword side
        assert store.delete(["doc1", "missing"]) == 1 and len(store) == len(DOCS) - 1
        assert store.get("doc2").metadata == METAS[2]  # type: ignore[union-attr]
        assert store.search(QUERIES[1], 5, filter={"odd": True})
    with MilvusStore(minilm, uri=milvus_server, collection="docs") as reopened:
        assert reopened.keywords == "none" and len(reopened) == len(DOCS) - 1
    with pytest.raises(IndexModelMismatchError, match="another model"):
        MilvusStore(tiny_encoder, uri=milvus_server, collection="docs")


def test_an_engine_without_bm25_falls_back_to_word_vectors(
    tmp_path: Path, minilm: Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wiring: the engine refuses the BM25 function (as Milvus 2.4 does); the rest is real."""
    from pymilvus.exceptions import MilvusException

    from llamaembed.store import milvus as module

    real = module.create_collection

    def refuse_bm25(client, name, dim, keywords, *args):  # type: ignore[no-untyped-def]
        if keywords == "bm25":
            real(client, name, dim, "none", *args)  # made in part, then refused
            raise MilvusException(message="function type BM25 not supported")
        real(client, name, dim, keywords, *args)

    monkeypatch.setattr(module, "create_collection", refuse_bm25)
    with pytest.warns(UserWarning, match="no BM25 function"):
        store = MilvusStore(minilm, uri=str(tmp_path / "old.db"), collection="old")
    with store:
        assert store.keywords == "words"
        store.add(["part number XK-4471B fits the pump", *DOCS[:30]])
        assert store.search("XK-4471B", 1)[0].text.startswith("part number")
