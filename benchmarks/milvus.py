"""When to move from ``Index`` to Milvus: memory, disk, add rate and query latency.

    python benchmarks/milvus.py [--sizes 100000,300000] [--threads 2]

For each size N, each system runs in a fresh process with the same MiniLM model open:
``Index`` (hnswlib + SQLite, in memory, saved to a folder) and ``MilvusStore`` on Milvus
Lite (a local .db file; the engine runs inside the process). Both take the same N vectors
(real MiniLM embeddings of STS-B-like short texts, plus noise) with their texts, then
answer 200 vector queries (k=10) and 200 hybrid text queries. Printed: resident memory
added by the documents, disk size, add rate, query p50, and the top-10 overlap of
Milvus's dense results with Index's. Record ``lscpu`` with the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def child(system: str, n: int, threads: int, out: str) -> None:
    """Measure one system at one size in this process; print JSON."""
    import numpy as np

    from benchmarks.prepare import gguf_paths, text_sets
    from llamaembed import Index, Llama

    texts = text_sets()["short"]
    with Llama(str(gguf_paths()["f16"]), n_threads=threads) as model:
        centres = model.embed_documents(texts[:2000])
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(centres), size=n)
        vectors = (
            centres[picks] + rng.standard_normal((n, centres.shape[1])).astype(np.float32) * 0.02
        )
        docs = [texts[i] for i in picks]
        ids = [str(i) for i in range(n)]
        queries = [
            centres[i] + rng.standard_normal(centres.shape[1]).astype(np.float32) * 0.02
            for i in range(200)
        ]
        words = texts[-200:]
        before = _rss_mb()
        started = time.perf_counter()
        folder = Path(out)
        if system == "index":
            store = Index(model)
            for first in range(0, n, 10_000):
                rows = slice(first, first + 10_000)
                store.add_vectors(vectors[rows], docs[rows], ids=ids[rows])
            store.save(folder / "index")
        else:
            from llamaembed.store.milvus import MilvusStore

            store = MilvusStore(model, uri=str(folder / "milvus.db"), collection="bench")
            for first in range(0, n, 10_000):
                rows = slice(first, first + 10_000)
                store.add_vectors(vectors[rows], docs[rows], ids=ids[rows])
            store._flush()  # what the first search would do; counted as adding
        add_s = time.perf_counter() - started
        dense_ms, hybrid_ms, top = [], [], []
        for vector in queries:
            t = time.perf_counter()
            top.append([h.id for h in store.search(vector, 10, hybrid=False)])
            dense_ms.append((time.perf_counter() - t) * 1e3)
        for text in words:
            t = time.perf_counter()
            store.search(text, 10)
            hybrid_ms.append((time.perf_counter() - t) * 1e3)
        report = {
            "system": system,
            "n": n,
            "rss_added_mb": _rss_mb() - before,
            "disk_mb": _size_mb(folder),
            "add_per_s": n / add_s,
            "dense_p50_ms": float(np.median(dense_ms)),
            "hybrid_p50_ms": float(np.median(hybrid_ms)),
            "top": top,
        }
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,300000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("SYSTEM", "N", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.threads, args.child[2])
        return
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in flags.splitlines() if "Model name" in ln), "?"
    )
    print(f"machine: {platform.machine()} {cpu}, {args.threads} threads")
    print(
        "| N | system | memory added MB | disk MB | adds/s | vector query p50 ms "
        "| hybrid query p50 ms | top-10 overlap with Index |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        results = {}
        for system in ("index", "milvus-lite"):
            out = tempfile.mkdtemp()
            try:
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--threads",
                        str(args.threads),
                        "--child",
                        system,
                        str(n),
                        out,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            finally:
                shutil.rmtree(out, ignore_errors=True)
            results[system] = json.loads(done.stdout.strip().splitlines()[-1])
        for system, r in results.items():
            overlap = sum(
                len(set(a) & set(b)) / 10
                for a, b in zip(r["top"], results["index"]["top"], strict=True)
            ) / len(r["top"])
            print(
                f"| {n:,} | {system} | {r['rss_added_mb']:.0f} | {r['disk_mb']:.0f} "
                f"| {r['add_per_s']:,.0f} | {r['dense_p50_ms']:.1f} | {r['hybrid_p50_ms']:.1f} "
                f"| {overlap:.2f} |"
            )


if __name__ == "__main__":
    main()
