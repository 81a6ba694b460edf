"""Text-query latency of ``Index.search`` below the exact-search threshold, with an A/B.

An index of N documents (MiniLM F16; the vectors are real embeddings of the short texts
plus noise, the texts themselves for BM25) answers 200 different short text queries one
after another, each embedded by llama.cpp and searched exactly (one product over all
vectors, N ≤ 20,000), dense only and hybrid. With ``--baseline DIR`` the same runs in a
process whose ``llamaembed`` is that checkout (a git worktree of an earlier commit), and
the ratios are printed: this is how numpy's BLAS threads were caught starving llama.cpp.

    python benchmarks/search_latency.py [--threads 2] [--baseline DIR] [--write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZES = (2_000, 20_000)


def child(threads: int, model_path: str, cache: str) -> None:
    """Measure in this process with the ``llamaembed`` of its cwd; print JSON."""
    import numpy as np

    import llamaembed
    from llamaembed import Index, Llama

    texts = json.loads((Path(cache) / "texts.json").read_text())["short"]
    centres = np.load(Path(cache) / "vectors-llamaembed-f16-short.npy")
    rng = np.random.default_rng(0)
    queries = texts[:200]
    report: dict[str, object] = {"llamaembed": str(Path(llamaembed.__file__).parent)}
    with Llama(model_path, n_threads=threads) as model:
        for n in SIZES:
            picks = rng.integers(0, len(centres), size=n)
            vectors = centres[picks] + rng.standard_normal((n, 384)).astype(np.float32) * 0.02
            index = Index(model)
            index.add_vectors(vectors, [texts[i] for i in picks])
            for hybrid in (False, True):
                for q in queries[:10]:
                    index.search(q, 10, hybrid=hybrid)
                times = []
                for q in queries:
                    started = time.perf_counter()
                    index.search(q, 10, hybrid=hybrid)
                    times.append(time.perf_counter() - started)
                key = f"{n}_{'hybrid' if hybrid else 'dense'}"
                report[f"{key}_p50_ms"] = float(np.median(times) * 1e3)
                report[f"{key}_mean_ms"] = float(np.mean(times) * 1e3)
    print(json.dumps(report))


def run(checkout: Path, threads: int) -> dict[str, Any]:
    """Run ``child`` in a fresh process whose cwd (and so ``llamaembed``) is ``checkout``."""
    sys.path.insert(0, str(HERE.parent))
    from benchmarks.prepare import CACHE, gguf_paths, text_sets

    text_sets()  # cached in CACHE, with the short texts' vectors from run.py
    args = (threads, str(gguf_paths()["f16"]), str(CACHE))
    done = subprocess.run(
        [sys.executable, "-c",
         f"import sys; sys.path.append({str(HERE)!r}); "
         f"import search_latency; search_latency.child(*{args!r})"],
        cwd=checkout, check=True, capture_output=True, text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--write", action="store_true", help="put the table in README.md")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from run import machine_header, write_results

    ours = run(HERE.parent, args.threads)
    base = run(args.baseline, args.threads) if args.baseline else None
    for label, result in (("this", ours), ("baseline", base)):
        if result is not None:
            print(f"{label}: llamaembed from {result.pop('llamaembed')}")
    head = "| documents | search | p50 ms | mean ms |"
    rule = "|---|---|---|---|"
    if base:
        head += " baseline p50 ms | baseline mean ms | × baseline (mean time) |"
        rule += "---|---|---|"
    lines = [*machine_header(args.threads), "", head, rule]
    for n in SIZES:
        for kind in ("dense", "hybrid"):
            key = f"{n}_{kind}"
            row = f"| {n:,} | {kind} | {ours[key + '_p50_ms']:.2f} | {ours[key + '_mean_ms']:.2f} |"
            if base:
                row += (f" {base[key + '_p50_ms']:.2f} | {base[key + '_mean_ms']:.2f} | "
                        f"{ours[key + '_mean_ms'] / base[key + '_mean_ms']:.2f}× |")
            lines.append(row)
    report = "\n".join(lines)
    print(report)
    if args.write:
        command = "python benchmarks/search_latency.py --threads {} {}--write".format(
            args.threads, "--baseline DIR " if base else "")
        write_results(report, command, "search-latency", "## Search latency of a text query")


if __name__ == "__main__":
    main()
