"""The index's bge-m3 side: learned sparse keywords and ColBERT rescoring, on llama.cpp.

The tiny random bge-m3 model gives meaningless rankings, so each ranking is checked
against the same quantity computed independently: ``lexical_matching_score`` over
every document for the keyword side, ``colbert_score`` of ``encode_m3`` outputs for the
rescoring.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from texts import stdlib_sentences

from llamaembed import (
    Index,
    KeywordsError,
    Llama,
    MissingHeadError,
    ShardedIndex,
    colbert_score,
    lexical_matching_score,
)

DOCS = stdlib_sentences(80)
QUERIES = ["how to open a file and read its lines", "sort a list by key", "network socket"]


def _lexical_ranking(tiny_m3: Llama, query: str, k: int) -> list[tuple[str, float]]:
    docs = tiny_m3.encode_m3(DOCS)["lexical_weights"]
    q = tiny_m3.encode_m3(query)["lexical_weights"]
    scores = [(str(i), lexical_matching_score(q, d)) for i, d in enumerate(docs)]
    scores = [s for s in scores if s[1] > 0]
    return sorted(scores, key=lambda s: -s[1])[:k]


def test_sparse_keywords_rank_by_lexical_matching(tiny_m3: Llama) -> None:
    index = Index(tiny_m3)
    assert index.keywords == "sparse"
    index.add(DOCS, ids=[str(i) for i in range(len(DOCS))])
    for query in QUERIES:
        vector, text = index.query_vector(query)
        _, sides = index.candidates(vector, text, 10)
        assert sides is not None and len(sides) == 1  # the lexical weights, one search
        keyword = sides[0][1]
        expected = _lexical_ranking(tiny_m3, query, 10)
        got = [(index.hits_by_label([(lab, s)])[lab].id, s) for lab, s in keyword]
        assert [i for i, _ in got] == [i for i, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_bm25_stays_available_and_models_without_heads_refuse_sparse(
    tiny_m3: Llama, tiny_encoder: Llama
) -> None:
    assert Index(tiny_m3, keywords="bm25").keywords == "bm25"
    assert Index(tiny_encoder).keywords == "bm25"
    with pytest.raises(KeywordsError, match="lexical weights"):
        Index(tiny_encoder, keywords="sparse")
    with pytest.raises(MissingHeadError, match="colbert"):
        Index(tiny_encoder, colbert=True)
    with pytest.raises(ValueError, match="keywords must be one of"):
        Index(tiny_m3, keywords="splade")


@pytest.mark.parametrize("stored", [True, False])
def test_colbert_rescoring_equals_late_interaction(tiny_m3: Llama, stored: bool) -> None:
    index = Index(tiny_m3, colbert=stored)
    index.add(DOCS, ids=[str(i) for i in range(len(DOCS))])
    query = QUERIES[0]
    hits = index.search(query, 5, rerank_with="colbert", candidates=20)
    q = tiny_m3.encode_m3(query, return_colbert_vecs=True)["colbert_vecs"]
    docs = tiny_m3.encode_m3(DOCS, return_colbert_vecs=True)["colbert_vecs"]
    pool = index.search(query, 20, candidates=20)  # the same 20 candidates, fused order
    expected = sorted(
        ((h.id, colbert_score(q, docs[int(h.id)])) for h in pool), key=lambda p: -p[1]
    )[:5]
    assert [h.id for h in hits] == [i for i, _ in expected]
    # stored vectors are float16: scores agree to float16's precision
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=2e-3)


def test_multi_vectors_are_stored_as_float16(tiny_m3: Llama, tmp_path: Path) -> None:
    index = Index(tiny_m3, colbert=True)
    index.add(DOCS[:3], ids=["a", "b", "c"])
    index.save(tmp_path / "idx")
    db = sqlite3.connect(next((tmp_path / "idx").glob("gen-*")) / "store.sqlite")
    rows = db.execute("SELECT c.width, length(c.vectors), d.text FROM colbert c "
                      "JOIN docs d USING (label)").fetchall()
    assert len(rows) == 3
    for width, size, text in rows:
        assert size == (len(tiny_m3.tokenize(text)) - 1) * width * 2


def test_save_load_delete_and_replace_keep_the_sides_in_step(tiny_m3: Llama, tmp_path: Path) -> None:
    index = Index(tiny_m3, colbert=True)
    index.add(DOCS[:20], ids=[str(i) for i in range(20)])
    before = index.search(QUERIES[1], 5, rerank_with="colbert")
    index.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx", tiny_m3)
    assert loaded.keywords == "sparse" and loaded.colbert
    after = loaded.search(QUERIES[1], 5, rerank_with="colbert")
    assert [(h.id, round(h.score, 5)) for h in after] == [(h.id, round(h.score, 5)) for h in before]
    # delete and replace drop the old lexical weights and ColBERT vectors
    loaded.delete(["3"])
    loaded.add([DOCS[40]], ids=["4"])
    labels = loaded.table.labels_in("docs")
    assert loaded.table.labels_in("sparse") <= labels
    assert loaded.table.labels_in("colbert") == labels
    vector, text = loaded.query_vector(DOCS[40])
    _, sides = loaded.candidates(vector, text, 3)
    assert sides
    keyword = sides[0][1]
    assert keyword and loaded.hits_by_label(keyword[:1])[keyword[0][0]].id == "4"


def test_sharded_index_rescores_with_colbert_too(tiny_m3: Llama) -> None:
    shards = [Index(tiny_m3), Index(tiny_m3)]
    for i, doc in enumerate(DOCS):
        shards[i % 2].add([doc], ids=[str(i)])
    sharded = ShardedIndex(shards, tiny_m3)
    single = Index(tiny_m3)
    single.add(DOCS, ids=[str(i) for i in range(len(DOCS))])
    got = sharded.search(QUERIES[2], 3, rerank_with="colbert", candidates=len(DOCS))
    want = single.search(QUERIES[2], 3, rerank_with="colbert", candidates=len(DOCS))
    assert [h.id for h in got] == [h.id for h in want]


def test_every_way_in_fills_the_sparse_side(tiny_m3: Llama, tiny_m3_path: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from llamaembed.cli import main

    # precomputed vectors with texts: the lexical weights are computed from the texts
    index = Index(tiny_m3)
    index.add_vectors(tiny_m3.embed_documents(DOCS[:5]), DOCS[:5], ids=list("abcde"))
    expected = sum(len(w) for w in tiny_m3.encode_m3(DOCS[:5])["lexical_weights"])
    assert index.table.count("sparse") == expected
    # `llamaembed index` of files, then `search --rerank colbert`
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(DOCS[:12]):
        (docs / f"{i}.txt").write_text(text)
    db = tmp_path / "db"
    runner = CliRunner()
    built = runner.invoke(main, ["index", str(docs), "--db", str(db), "--model", str(tiny_m3_path)])
    assert built.exit_code == 0, built.output
    loaded = Index.load(db, tiny_m3)
    assert loaded.keywords == "sparse" and len(loaded) == 12
    assert len(loaded.table.labels_in("sparse")) == 12
    found = runner.invoke(main, ["search", DOCS[3], "--db", str(db), "--rerank", "colbert",
                                 "--json", "-k", "3"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    q = tiny_m3.encode_m3(DOCS[3], return_colbert_vecs=True)["colbert_vecs"]
    for hit in hits:
        p = tiny_m3.encode_m3(hit["text"], return_colbert_vecs=True)["colbert_vecs"]
        assert hit["score"] == pytest.approx(colbert_score(q, p), abs=1e-4)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_a_query_is_encoded_once_for_all_three_sides(
    tiny_m3: Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index(tiny_m3, colbert=True)
    index.add(DOCS[:30], ids=[str(i) for i in range(30)])
    real = tiny_m3.encode_outputs
    calls: list[object] = []

    def counting(texts, want, **options):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return real(texts, want, **options)

    monkeypatch.setattr(tiny_m3, "encode_outputs", counting)
    query = "a query seen by no other test: how are zip archives read"
    hits = index.search(query, 5, rerank_with="colbert")
    assert calls == [[query]]  # dense, lexical and ColBERT sides from one pass
    # and the dense side is the model's own query vector
    vector, _ = index.query_vector(query)
    assert float(vector @ tiny_m3.embed_query(query)) > 0.99999
    assert len(hits) == 5
