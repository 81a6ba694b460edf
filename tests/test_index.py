"""The index: recall, persistence you can trust, hybrid search, rerank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from llamaembed import Hit, Index, IndexModelMismatchError, Llama, SearchIndexError
from llamaembed.store.keywords import BM25


def _random(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _recall(index: Index, data: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ unit.T), axis=1)[:, :k]
    found = [[int(h.id) for h in index.search(q, k, hybrid=False)] for q in queries]
    return float(np.mean([len(set(f) & set(e)) / k for f, e in zip(found, exact, strict=True)]))


def test_recall_default_parameters_10000_random_vectors() -> None:
    data, queries = _random(10_000), _random(100, seed=1)
    index = Index(dim=384)
    index.add_vectors(data)
    assert _recall(index, data, queries) >= 0.99


def test_recall_of_the_hnsw_graph_itself() -> None:
    # Force the approximate path (the default searches exactly below 20,000 vectors).
    data, queries = _random(10_000, seed=2), _random(100, seed=3)
    index = Index(dim=384, exact_threshold=0, ef=400)
    index.add_vectors(data)
    assert _recall(index, data, queries) >= 0.97
    # Scores are cosines on this path too, whatever the query's length.
    query = queries[0] * 7.0
    for hit in index.search(query, 5, hybrid=False):
        row = data[int(hit.id)]
        cosine = row @ query / (np.linalg.norm(row) * np.linalg.norm(query))
        assert abs(hit.score - cosine) < 1e-5


def test_hit_is_frozen_and_scores_are_cosines() -> None:
    index = Index(dim=4)
    index.add_vectors([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]], ["x", "y", "xy"],
                      [{"n": 1}, {"n": 2}, {"n": 3}], ids=["a", "b", "c"])
    hits = index.search(np.array([1, 0, 0, 0], np.float32), 3, hybrid=False)
    assert [h.id for h in hits] == ["a", "c", "b"]
    assert hits[0] == Hit("a", pytest.approx(1.0), "x", {"n": 1}, pytest.approx(1.0))
    assert hits[1].score == pytest.approx(np.sqrt(0.5), abs=1e-6)
    # similarity is the dense cosine whatever orders the hits (here: the same)
    assert [h.similarity for h in hits] == pytest.approx([h.score for h in hits], abs=1e-6)
    assert index.get("a").similarity is None  # type: ignore[union-attr]
    with pytest.raises(AttributeError):
        hits[0].score = 2.0  # type: ignore[misc]


def test_delete_upsert_growth_filter(tmp_path: Path) -> None:
    index = Index(dim=8, capacity=16, exact_threshold=0)
    vectors = _random(100, dim=8)
    ids = index.add_vectors(vectors, [f"t{i}" for i in range(100)],
                            [{"parity": i % 2} for i in range(100)],
                            ids=[f"d{i}" for i in range(100)])
    assert len(index) == 100 and ids[0] == "d0"  # grew from 16
    assert index.delete(["d0", "d1", "missing"]) == 2
    assert "d0" not in index and len(index) == 98
    index.add_vectors(vectors[5:6] * -1, ["replaced"], ids=["d5"])  # upsert
    assert len(index) == 98 and index.get("d5").text == "replaced"
    hits = index.search(vectors[7], 5, hybrid=False, filter={"parity": 1})
    assert hits and all(h.metadata["parity"] == 1 for h in hits)
    assert hits[0].id == "d7"
    # a list value matches any of its items (`search --glob`); an empty one matches nothing
    some = index.search(vectors[7], 5, hybrid=False, filter={"parity": 1, "id": ["x"]})
    assert some == []
    listed = index.search(vectors[7], 10, filter={"parity": [0, 1]})
    assert len(listed) == 10
    assert index.search(vectors[7], 5, hybrid=False, filter={"parity": []}) == []
    assert set(index.ids_where(parity=0)) == {f"d{i}" for i in range(2, 100, 2)}
    with pytest.raises(ValueError):
        index.add_vectors(np.full((1, 8), np.nan), ["bad"])
    with pytest.raises(ValueError):
        index.add_vectors(_random(2, dim=7))


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="space"):
        Index(dim=4, space="l2")
    with pytest.raises(ValueError, match="embedder or the vector dimension"):
        Index()
    # hnswlib checks none of these; M=0 crashed the process.
    for settings in ({"dim": 0}, {"dim": 4.5}, {"M": 0}, {"M": 1}, {"ef": 0},
                     {"ef_construction": 0}, {"capacity": -1}, {"exact_threshold": -1}):
        with pytest.raises(ValueError, match=next(iter(settings))):
            Index(**{"dim": 4, **settings})  # type: ignore[arg-type]
    saved = Index(dim=4, M=2)
    saved.add_vectors(np.eye(4))
    saved.save(tmp_path / "index")
    manifest_file = next((tmp_path / "index").glob("*.json"))
    manifest = json.loads(manifest_file.read_text())
    manifest["hnsw"]["M"] = 0
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(SearchIndexError, match="invalid settings"):
        Index.load(tmp_path / "index")
    index = Index(dim=4)
    index.add_vectors(np.eye(4), ["a", "b", "c", "d"], ids=["a", "b", "c", "d"])
    bad_calls = [
        (lambda: index.add_vectors(np.eye(4)[:2], ["x"]), "same length"),
        (lambda: index.add_vectors(np.eye(4)[:2], ids=["x"]), "same length"),
        (lambda: index.add_vectors(np.eye(4)[:2], metadatas=[{}]), "same length"),
        (lambda: index.add_vectors(np.eye(4)[:2], ids=["a", "a"]), "unique"),
        (lambda: index.search(np.ones(3), 2, hybrid=False), "4 values"),
        (lambda: index.search(np.full(4, np.nan), 2, hybrid=False), "NaN"),
        (lambda: index.search(np.ones(4), 2, candidates=-5), "candidates"),
        (lambda: index.search(np.ones(4), 2, candidates=0), "candidates"),
        (lambda: index.search(np.ones(4), 2, hybrid=False, filter={"a'); --": 1}), "keys"),
        (lambda: index.ids_where(**{"x y": 1}), "keys"),
    ]
    for call, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            call()
    for value in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="ef"):
            index.ef = value  # type: ignore[assignment]
    # Nothing above touched the index: the same four documents, the same answers.
    assert len(index) == 4 and index.get("a").text == "a" and index.ef == 128
    assert [h.id for h in index.search(np.eye(4)[1], 1, hybrid=False)] == ["b"]
    assert index.add_vectors(np.empty((0, 4))) == []


def test_save_load_identical_and_parameters_kept(tmp_path: Path) -> None:
    index = Index(dim=16, ef=77, exact_threshold=0, M=12)
    data = _random(500, dim=16)
    index.add_vectors(data, [f"text {i}" for i in range(500)],
                      [{"i": i} for i in range(500)])
    before = [index.search(q, 5, hybrid=False) for q in data[:20]]
    index.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx")
    assert (loaded.ef, loaded.M, loaded.exact_threshold, len(loaded)) == (77, 12, 0, 500)
    assert [loaded.search(q, 5, hybrid=False) for q in data[:20]] == before
    loaded.add_vectors(_random(3, dim=16, seed=9))  # labels keep growing after a load
    assert len(loaded) == 503
    loaded.save(tmp_path / "idx")
    # the previous generation stays for a reader still loading it; older ones go
    names = [".lock", "gen-000001", "gen-000002", "manifest.json"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == names
    loaded.save(tmp_path / "idx")
    names = [".lock", "gen-000002", "gen-000003", "manifest.json"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == names


def test_truncated_or_tampered_files_raise(tmp_path: Path) -> None:
    index = Index(dim=8)
    index.add_vectors(_random(50, dim=8), [f"t{i}" for i in range(50)])
    folder = index.save(tmp_path / "idx")
    generation = next(folder.glob("gen-*"))
    for name in ("vectors.hnsw", "store.sqlite"):
        file = generation / name
        original = file.read_bytes()
        file.write_bytes(original[: len(original) // 2])
        with pytest.raises(SearchIndexError, match="checksum"):
            Index.load(folder)
        tampered = bytearray(original)
        tampered[len(tampered) // 2] ^= 0xFF
        file.write_bytes(bytes(tampered))
        with pytest.raises(SearchIndexError, match="checksum"):
            Index.load(folder)
        file.write_bytes(original)
    Index.load(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(SearchIndexError, match="unreadable"):
        Index.load(folder)
    with pytest.raises(SearchIndexError, match="missing"):
        Index.load(tmp_path / "nowhere")


def test_sigkill_during_save_keeps_previous_index(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    first = Index(dim=64)
    first.add_vectors(_random(2000, dim=64), [f"t{i}" for i in range(2000)])
    first.save(folder)
    script = textwrap.dedent(f"""
        import numpy as np
        from llamaembed import Index
        index = Index.load({str(folder)!r})
        rng = np.random.default_rng()
        print("ready", flush=True)
        while True:
            index.add_vectors(rng.standard_normal((500, 64)).astype(np.float32))
            index.save({str(folder)!r})
    """)
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.37 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = Index.load(folder)  # never a half-written index
        assert len(loaded) >= 2000 and (len(loaded) - 2000) % 500 == 0
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["count"] == len(loaded)


def test_model_mismatch_and_dimension_checks(
    tmp_path: Path, minilm: Llama, tiny_encoder_path: Path, minilm_quant_path
) -> None:  # type: ignore[no-untyped-def]
    index = Index(minilm)
    index.add(["memory safety in Rust", "cats sleep a lot"])
    index.save(tmp_path / "idx")
    assert Index.load(tmp_path / "idx", minilm).search("rust", 1)[0].text.startswith("memory")
    with Llama(minilm_quant_path("q8_0")) as other, pytest.raises(IndexModelMismatchError):
        Index.load(tmp_path / "idx", other)
    with Llama(tiny_encoder_path) as tiny, pytest.raises(IndexModelMismatchError):
        Index(tiny, dim=384)


LABELLED_DOCS = {
    "relay": "The XK-42 relay module switches mains power from a microcontroller pin.",
    "zq": "Firmware ZQ7-Beta fixes the bootloader checksum bug on older boards.",
    "pasta": "Boil the spaghetti in salted water for nine minutes, then drain it.",
    "garden": "Tomato plants need full sun and regular watering during summer.",
    "bank": "Transfer money between your savings and checking accounts online.",
    "sleep": "Adults should aim for seven to nine hours of sleep every night.",
    "rust": "Rust guarantees memory safety without a garbage collector.",
    "python": "Python lists grow dynamically and can hold objects of any type.",
    "flight": "Your boarding pass must be shown at the gate before departure.",
    "ocean": "Coral reefs are home to a quarter of all marine species.",
}
FILLER = [
    "The relay race was won by the team from Kenya.",
    "A module in a university course lasts one semester.",
    "Firmware updates are installed through the settings menu.",
    "The beta version of the app has new colour themes.",
    "Microcontrollers are small computers on a single chip.",
    "Mains electricity is dangerous; hire a qualified electrician.",
]
KEYWORD_QUERIES = {"XK-42": "relay", "ZQ7-Beta": "zq"}
PARAPHRASE_QUERIES = {
    "how long should I cook noodles": "pasta",
    "growing vegetables in the backyard": "garden",
    "move funds to another account": "bank",
    "how much rest do grown-ups need": "sleep",
    "programming language without GC that prevents memory bugs": "rust",
    "what do I need to board the plane": "flight",
}


def test_hybrid_at_least_as_good_as_vector_only(minilm: Llama) -> None:
    index = Index(minilm)
    index.add(list(LABELLED_DOCS.values()) + FILLER, ids=list(LABELLED_DOCS) +
              [f"filler{i}" for i in range(len(FILLER))])

    def reciprocal_rank(query: str, target: str, hybrid: bool) -> float:
        ids = [h.id for h in index.search(query, 10, hybrid=hybrid)]
        return 1 / (ids.index(target) + 1) if target in ids else 0.0

    for queries in (KEYWORD_QUERIES, PARAPHRASE_QUERIES):
        hybrid = np.mean([reciprocal_rank(q, t, True) for q, t in queries.items()])
        vector = np.mean([reciprocal_rank(q, t, False) for q, t in queries.items()])
        assert hybrid >= vector, (queries, hybrid, vector)
    # the rare keyword is found first once BM25 joins in
    assert all(index.search(q, 1)[0].id == t for q, t in KEYWORD_QUERIES.items())
    # a hybrid hit's score is the fused one; its similarity is still the dense cosine
    query = next(iter(PARAPHRASE_QUERIES))
    for hit in index.search(query, 5):
        cosine = float(minilm.embed_query(query) @ minilm.embed_documents([hit.text])[0])
        assert hit.similarity == pytest.approx(cosine, abs=2e-3)
        # fused: the cosine plus at most both BM25 sides' weights (store.keywords.BM25)
        assert -2e-3 <= hit.score - hit.similarity <= BM25.weight + 1e-6


def test_rerank_stage_orders_by_cross_encoder(minilm: Llama, tiny_reranker: Llama) -> None:
    index = Index(minilm)
    docs = ["rust code is safe", "the cat runs", "memory safe systems programming",
            "hello world", "a dog runs fast"]
    index.add(docs)
    hits = index.search("rust memory safety", 3, rerank_with=tiny_reranker)
    candidates = [h.text for h in index.search("rust memory safety", 40)]
    scores = tiny_reranker.rerank("rust memory safety", candidates)
    best = [candidates[i] for i in np.argsort(-scores)[:3]]
    assert [h.text for h in hits] == best
    assert hits[0].score == pytest.approx(float(np.max(scores)), abs=1e-5)


def test_index_persists_under_umask(tmp_path: Path) -> None:
    index = Index(dim=4)
    index.add_vectors(_random(3, dim=4))
    folder = index.save(tmp_path / "idx")
    mode = (folder / "manifest.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
