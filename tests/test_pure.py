"""Pure functions: pooling, similarity, fusion, chunking, parameters (no model needed)."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import llamaembed
from llamaembed import EmbedOptions, LlamaParams, Pooling, chunk_text, reciprocal_rank_fusion
from llamaembed.engine.pooling import cosine_similarity, l2_normalize, sigmoid


def test_exported_members_sorted_and_complete() -> None:
    # ruff's order: CONSTANTS, then the rest in code-point order
    assert llamaembed.__all__ == sorted(llamaembed.__all__, key=lambda n: (not n.isupper(), n))
    public = {n for n in dir(llamaembed) if not n.startswith("_")}
    assert public == set(llamaembed.__all__) == set(llamaembed._LAZY)
    for name in llamaembed.__all__:  # each lazy name resolves to its module's object
        value = getattr(llamaembed, name)
        assert getattr(value, "__module__", f"llamaembed.{llamaembed._LAZY[name]}").startswith(
            "llamaembed."
        )
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = llamaembed.nope  # type: ignore[attr-defined]


def test_import_does_not_load_llama_cpp() -> None:
    import subprocess
    import sys

    code = ("import sys, llamaembed, llamaembed.cli; "
            "print(sorted(m for m in ('llama_cpp', 'hnswlib', 'huggingface_hub', 'gguf') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # The package itself is lazy: importing it loads neither numpy nor its submodules.
    bare = subprocess.run([sys.executable, "-c", "import sys, llamaembed; "
                           "print(sorted(m for m in sys.modules if m.startswith(('numpy', "
                           "'llamaembed.'))))"], capture_output=True, text=True, check=True)
    assert bare.stdout.strip() == "[]"
    help_out = subprocess.run([sys.executable, "-c",
                               "import sys\nfrom llamaembed.cli import main\n"
                               "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                               "print('llama_cpp' in sys.modules)"],
                              capture_output=True, text=True, check=True)
    assert help_out.stdout.strip().endswith("False")


def test_pooling_functions() -> None:
    m = np.array([[1.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    unit = l2_normalize(m)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1)
    assert l2_normalize(np.zeros(3)).tolist() == [0, 0, 0]
    sims = cosine_similarity(m[1], m)
    assert sims.shape == (2,) and sims[1] == pytest.approx(1.0)
    assert cosine_similarity(m, m).shape == (2, 2)
    assert np.allclose(sigmoid([0.0, 1000.0, -1000.0]), [0.5, 1.0, 0.0])


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert [item for item, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert reciprocal_rank_fusion([]) == []


def test_pooling_enum_parsing() -> None:
    assert Pooling.parse("CLS") is Pooling.CLS
    assert Pooling.parse(1) is Pooling.MEAN
    assert Pooling.parse(Pooling.RANK).llama_code == 4
    with pytest.raises(ValueError, match="mean"):
        Pooling.parse("avg")
    with pytest.raises(ValueError):
        Pooling.parse(9)


def test_params_are_frozen_copies_and_picklable() -> None:
    params = LlamaParams("m.gguf")
    other = params.with_n_ctx(256).with_pooling("cls").with_n_threads(2).with_n_batch(64)
    assert (params.n_ctx, other.n_ctx, other.pooling) == (0, 256, Pooling.CLS)
    assert pickle.loads(pickle.dumps(other)) == other
    with pytest.raises(AttributeError):
        params.n_ctx = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        LlamaParams("m.gguf", n_batch=2)
    with pytest.raises(ValueError):
        LlamaParams("m.gguf", n_seq_max=0)
    assert EmbedOptions().with_normalize(False).normalize is False


def _count(word: str) -> int:
    return max(1, len(word) // 4)


def test_chunks_fit_cover_and_overlap() -> None:
    words = [f"word{i}" + "x" * (i % 7) for i in range(500)]
    text = "  ".join(words) + "\n"
    chunks = chunk_text(text, _count, max_tokens=50, overlap=10)
    assert len(chunks) > 5
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert sum(_count(w) for w in chunk.text.split()) <= 50
    assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start < a.end  # consecutive chunks overlap
        assert b.start <= a.end
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text.rstrip()) if not ch.isspace())


def test_chunking_edge_cases() -> None:
    assert chunk_text("", _count, 10) == []
    assert chunk_text("   \n ", _count, 10) == []
    huge = "y" * 400
    assert [c.text for c in chunk_text(f"a {huge} b", _count, 10, overlap=0)] == ["a", huge, "b"]
    no_overlap = chunk_text("a b c d e f", lambda w: 1, 2, overlap=0)
    assert [c.text for c in no_overlap] == ["a b", "c d", "e f"]
    with pytest.raises(ValueError):
        chunk_text("a", _count, 0)
    with pytest.raises(ValueError):
        chunk_text("a", _count, 10, overlap=10)


def test_salient_words_and_fts_query() -> None:
    from llamaembed.store.keywords import fts_query, salient_words

    vocabulary = {"how", "do", "i", "configure", "the", "on", "relay", "beta", "need", "rest"}

    def count_tokens(word: str) -> int:
        # a word in the vocabulary is one token; any other splits into characters
        return 1 if word in vocabulary else len(word)

    words = salient_words("How do I configure the XK-42 relay on ZQ7-Beta?", count_tokens)
    assert words == {"xk", "42", "zq7"}
    assert salient_words("how much rest do grown ups need", count_tokens) == {
        "much",
        "grown",
        "ups",
    }
    assert salient_words("the relay", None) == {"relay"}  # no tokenizer: stopwords only
    assert fts_query({"xk", "42"}) == '"42" OR "xk"'
    assert fts_query([]) == ""


def test_every_error_pickles_with_its_fields() -> None:
    import inspect
    import pickle

    from llamaembed import errors

    special = {
        errors.InputTooLongError: {"index": 3, "n_tokens": 600, "limit": 512},
        errors.InvalidTokenError: {"index": 1},
        errors.QueueFullError: {"retry_after": 1.5},
        errors.RequestTooLargeError: {"n_tokens": 9000, "limit": 4096},
    }
    classes = {
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, errors.LlamaEmbedError)
    }
    assert len(classes) == len(set(errors.__all__) - {"IndexError_"})
    for kind in classes:
        fields = special.get(kind, {})
        error = kind("what went wrong", **fields)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is kind and str(copy) == "what went wrong"
        assert {name: getattr(copy, name) for name in fields} == fields
    assert errors.IndexError_ is errors.SearchIndexError  # the old name still catches


def test_plan_batches_packs_longest_first_within_budget() -> None:
    from llamaembed.engine.layout import plan_batches

    lengths = [5, 40, 12, 100, 7, 30]
    batches = plan_batches(lengths, budget=50, max_seqs=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert batches[0] == [3]  # longer than the budget: a micro-batch of its own
    for batch in batches[1:]:
        assert sum(lengths[i] for i in batch) <= 50 and len(batch) <= 3
    order = [i for batch in batches for i in batch]
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    assert plan_batches([3, 3, 3], budget=100, max_seqs=2) == [[0, 1], [2]]
    assert plan_batches([], budget=10, max_seqs=4) == []


def test_single_threaded_blas_holds_blas_to_one_thread_and_restores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    import numpy as np  # noqa: F401  (loads the BLAS threadpoolctl looks for)
    from threadpoolctl import threadpool_info

    from llamaembed import _blas
    from llamaembed._blas import single_threaded_blas

    # The guard finds the BLAS libraries loaded when it is first used (numpy's, in the
    # library); start afresh so it sees every one loaded by the tests before this one.
    monkeypatch.setattr(_blas, "_controller", None)

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    if not before:
        pytest.skip("numpy has no BLAS threadpoolctl can see")
    seen: list[list[int]] = []
    with single_threaded_blas():
        seen.append(blas_threads())
    # from a worker thread too (the server's queue runs bge-m3's heads there)
    def work() -> None:
        with single_threaded_blas():
            seen.append(blas_threads())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_sparse_vector_keeps_each_ids_largest_weight_and_scores_like_flagembedding() -> None:
    from llamaembed import SparseVector
    from llamaembed.engine.m3 import lexical_matching_score

    vector = SparseVector.from_pairs([7, 3, 7, 5], [0.25, 0.5, 0.75, 0.0])
    assert vector.indices.tolist() == [3, 5, 7] and vector.indices.dtype == np.int64
    assert vector.values.tolist() == [0.5, 0.0, 0.75] and vector.values.dtype == np.float32
    assert vector.to_dict() == {"3": 0.5, "5": 0.0, "7": 0.75}
    assert SparseVector.from_dict(vector.to_dict()) == vector
    other = SparseVector.from_dict({"7": 2.0, "9": 1.0, "3": 1.0})
    assert vector.dot(other) == pytest.approx(0.5 * 1.0 + 0.75 * 2.0)
    # the typed score equals the dict score FlagEmbedding computes
    assert lexical_matching_score(vector, other) == pytest.approx(
        lexical_matching_score(vector.to_dict(), other.to_dict())
    )
    grid = lexical_matching_score([vector, other], [other])
    assert grid.shape == (2, 1) and grid[1, 0] == pytest.approx(4.0 + 1.0 + 1.0)
    assert len(SparseVector.from_pairs([], [])) == 0
    with pytest.raises(ValueError, match="one length"):
        SparseVector(np.array([1, 2]), np.array([1.0], dtype=np.float32))


def test_want_flags_say_which_need_token_states() -> None:
    from llamaembed import Want

    assert not Want.POOLED.token_level
    assert all(w.token_level for w in (Want.SPARSE, Want.COLBERT, Want.TOKENS))
    assert (Want.POOLED | Want.SPARSE).token_level


def test_fuse_candidates_adds_bounded_keyword_bonuses_to_the_cosine() -> None:
    from llamaembed.store.keywords import KeywordSide
    from llamaembed.store.search import fuse_candidates

    dense = [("a", 0.80), ("b", 0.78), ("c", 0.60)]
    assert fuse_candidates(dense, None, 2) == dense[:2]
    assert fuse_candidates(dense, [], 3) == dense  # no keyword search made: dense order
    every = KeywordSide({"pump"}, 0.05, 5.0)
    salient = KeywordSide({"xk"}, 0.075, 5.0)
    assert every.bonus(5.0) == pytest.approx(0.025) and every.bonus(0.0) == 0.0
    assert every.bonus(1e9) == pytest.approx(0.05)  # saturates at the weight
    fused = fuse_candidates(dense, [(every, [("b", 10.0), ("d", 20.0)]), (salient, [("b", 5.0)])], 4)
    assert [key for key, _ in fused] == ["b", "a", "d", "c"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(0.78 + 0.05 * 10 / 15 + 0.075 * 5 / 10)
    # "d" was found by keywords alone: it counts the lowest dense cosine, 0.60
    assert scores["d"] == pytest.approx(0.60 + 0.05 * 20 / 25)
    # a weak match cannot lift a passage past a clear difference in meaning
    far = fuse_candidates([("a", 0.9), ("z", 0.5)], [(every, [("z", 1e6)]), (salient, [("z", 1e6)])], 2)
    assert [key for key, _ in far] == ["a", "z"]


def test_sql_where_any_of_lists_of_any_length() -> None:
    import json
    import sqlite3

    from llamaembed.store.search import sql_where

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE docs (label INTEGER, metadata TEXT)")
    rows = [(i, json.dumps({"source": f"f{i}", "even": i % 2 == 0})) for i in range(50_000)]
    db.executemany("INSERT INTO docs VALUES (?, ?)", rows)

    def labels(**equals: object) -> set[int]:
        sql, args = sql_where(equals)
        return {r[0] for r in db.execute(f"SELECT label FROM docs {sql}", args)}

    # 40,000 items: more than SQLite lets a statement bind
    wanted = [f"f{i}" for i in range(0, 40_000)]
    assert labels(source=wanted, even=True) == set(range(0, 40_000, 2))
    assert labels(even=[True]) == labels(even=True) == set(range(0, 50_000, 2))
    assert labels(source=[]) == set()
    assert labels(source=("f3", "f7", "nope")) == {3, 7}
