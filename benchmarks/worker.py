"""Run one system in this process and print its measurements as JSON (used by run.py).

    python benchmarks/worker.py SYSTEM [--threads 2]

Systems: llamaembed-{f16,q8_0,q4_k_m,q4_0}, fastembed-{fp32,int8}, sentence-transformers,
llama-cpp-python (``llama_cpp.Llama.embed`` with its defaults), rerank,
rerank-sentence-transformers (its CrossEncoder on the same weights), index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.prepare import (
    CACHE,
    cross_encoder_gguf,
    gguf_paths,
    minilm_folder,
    onnx_folders,
    text_sets,
)

QUERY = "how do I open a network connection to a server"  # a 10-word query


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_system(name: str, threads: int) -> Callable[[list[str]], np.ndarray]:
    if name.startswith("llamaembed-"):
        from llamaembed import Llama

        kind = name.split("-", 1)[1]
        if kind == "auto":  # the type llamaembed's auto rule picks on this machine
            from llamaembed.engine.system import auto_weight_type

            kind = auto_weight_type().type
        llama = Llama(gguf_paths()[kind], n_threads=threads)
        return llama.embed_texts
    if name.startswith("fastembed-"):
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        kind = name.split("-", 1)[1]
        model_name = f"local/all-MiniLM-L6-v2-{kind}"
        TextEmbedding.add_custom_model(model=model_name, pooling=PoolingType.MEAN,
                                       normalization=True, sources=ModelSource(hf=model_name),
                                       dim=384, model_file="model.onnx")
        model = TextEmbedding(model_name=model_name, specific_model_path=str(onnx_folders()[kind]),
                              threads=threads)
        return lambda texts: np.asarray(list(model.embed(texts)), dtype=np.float32)
    if name == "sentence-transformers":
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        st = SentenceTransformer(str(minilm_folder()), device="cpu")
        return lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    if name == "llama-cpp-python":
        import llama_cpp

        lc = llama_cpp.Llama(str(gguf_paths()["f16"]), embedding=True, n_threads=threads,
                             n_threads_batch=threads, verbose=False)
        return lambda texts: np.asarray(lc.embed(texts, normalize=True), dtype=np.float32)
    raise SystemExit(f"unknown system {name}")


def query_latencies(embed: Callable[[list[str]], Any], runs: int) -> list[float]:
    """Return the seconds of ``runs`` calls embedding the one 10-word query alone."""
    latencies = []
    for _ in range(runs):
        start = time.perf_counter()
        embed([QUERY])
        latencies.append(time.perf_counter() - start)
    return latencies


def measure_embedder(name: str, threads: int) -> dict[str, Any]:
    sets = text_sets()
    start = time.perf_counter()
    embed = load_system(name, threads)
    load_s = time.perf_counter() - start
    embed(sets["short"][:32])  # warm-up
    result: dict[str, Any] = {"system": name, "load_s": load_s}
    for label, texts in sets.items():
        start = time.perf_counter()
        vectors = embed(texts)
        elapsed = time.perf_counter() - start
        result[f"{label}_texts_per_s"] = len(texts) / elapsed
        np.save(CACHE / f"vectors-{name}-{label}.npy", np.asarray(vectors, dtype=np.float32))
    latencies = query_latencies(embed, 200)
    result["p50_ms"] = float(np.percentile(latencies, 50) * 1000)
    result["p95_ms"] = float(np.percentile(latencies, 95) * 1000)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def load_reranker(name: str, threads: int) -> Callable[[list[str]], np.ndarray]:
    """Return score(passages) for QUERY: llamaembed, or sentence-transformers' CrossEncoder."""
    if name == "rerank":
        from llamaembed import Llama

        model = Llama(cross_encoder_gguf(), n_threads=threads)
        return lambda passages: np.asarray(model.rerank(QUERY, passages, activation="sigmoid"),
                                           dtype=np.float32)
    if name == "rerank-sentence-transformers":
        import torch
        from sentence_transformers import CrossEncoder

        torch.set_num_threads(threads)
        encoder = CrossEncoder(str(cross_encoder_gguf().parent / "cross-encoder-src"),
                               device="cpu")
        return lambda passages: np.asarray(
            encoder.predict([(QUERY, p) for p in passages], batch_size=32), dtype=np.float32)
    raise SystemExit(f"unknown reranker {name}")


def measure_rerank(name: str, threads: int) -> dict[str, Any]:
    """100 pairs batched vs one at a time, with long (120–250 token) and short passages."""
    sets = text_sets()
    result: dict[str, Any] = {"system": name}
    score = load_reranker(name, threads)
    score(sets["short"][:4])  # warm-up
    for label in ("long", "short"):
        passages = sets[label][:100]
        start = time.perf_counter()
        batched = score(passages)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        single = np.array([score([p])[0] for p in passages])
        single_s = time.perf_counter() - start
        np.save(CACHE / f"scores-{name}-{label}.npy", batched)
        result[label] = {"batched_pairs_per_s": 100 / batched_s,
                         "single_pairs_per_s": 100 / single_s,
                         "speedup": single_s / batched_s,
                         "max_abs_diff": float(np.max(np.abs(batched - single)))}
    return result


def measure_index(n: int = 100_000, n_queries: int = 1000) -> dict[str, Any]:
    """Query rate and recall@10 of Index.search on one thread, two kinds of 384-d data."""
    from llamaembed import Index

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"system": "index", "n": n}
    # "embedding-like": real MiniLM vectors of the short texts, each the centre of a small
    # cloud (texts and their near-paraphrases); "random": i.i.d. Gaussian, the worst case.
    centres = np.load(CACHE / "vectors-llamaembed-f16-short.npy")
    picks = rng.integers(0, len(centres), size=n)
    like = centres[picks] + rng.standard_normal((n, 384)).astype(np.float32) * 0.02
    datasets = {"embedding_like": like, "random": rng.standard_normal((n, 384)).astype(np.float32)}
    os.environ["OMP_NUM_THREADS"] = "1"
    for label, data in datasets.items():
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
        queries = data[rng.integers(0, n, n_queries)] + rng.standard_normal(
            (n_queries, 384)).astype(np.float32) * 0.02
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
        index = Index(dim=384)
        start = time.perf_counter()
        index.add_vectors(data)
        out[f"{label}_build_s"] = time.perf_counter() - start
        index.graph.set_num_threads(1)  # one thread for queries, as the goal says
        for ef in (32, 64, 128, 256):
            index.ef = ef
            start = time.perf_counter()
            found = [[int(h.id) for h in index.search(q, 10, hybrid=False)] for q in queries]
            elapsed = time.perf_counter() - start
            overlaps = [len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)]
            recall = float(np.mean(overlaps))
            out[f"{label}_ef{ef}"] = {"qps": n_queries / elapsed, "recall": recall}
        index.ef = 32  # the floor: hnswlib's own knn_query, without texts and metadata
        start = time.perf_counter()
        for q in queries:
            index.graph.knn_query(q, k=10)
        out[f"{label}_raw_qps"] = n_queries / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.system.startswith("rerank"):
        result = measure_rerank(args.system, args.threads)
    elif args.system == "index":
        result = measure_index()
    else:
        result = measure_embedder(args.system, args.threads)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
