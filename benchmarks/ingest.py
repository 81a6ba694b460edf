"""`llamaembed index` of this repository's files, as an A/B of two checkouts.

Each round indexes README.md, llamaembed/ and examples/ into a fresh folder with each
checkout in turn (alternating who goes first): MiniLM F16 with BM25 keywords, and a
bge-m3-shaped GGUF (its sparse head: learned-sparse keywords) when `--m3 GGUF` is given.
Prints the wall time of each run and the size of the index's SQLite file, and this
checkout's time × the baseline's per round; then the store alone: 20,000 prepared passages
(vectors and sparse weights given) added to an ``Index``, BM25 and sparse keywords.

    python benchmarks/ingest.py --baseline DIR [--m3 TINY-BGE-M3.gguf] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.prepare import gguf_paths
from benchmarks.run import machine_header

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", ROOT / "llamaembed", ROOT / "examples"]


def index_once(checkout: Path, model: Path, db: Path) -> tuple[float, int, int]:
    """Return the seconds one `llamaembed index` took, the SQLite file's bytes, passages."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [
        sys.executable,
        "-m",
        "llamaembed",
        "index",
        *map(str, SOURCES),
        "--db",
        str(db),
        "--model",
        str(model),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=checkout)
    seconds = time.perf_counter() - started
    manifest = json.loads((db / "manifest.json").read_text())
    size = (db / manifest["generation"] / "store.sqlite").stat().st_size
    return seconds, size, int(manifest["count"])


STORE_ONLY = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from llamaembed import Index
n, keywords = int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
vectors = rng.standard_normal((n, 64)).astype(np.float32)
texts = [f"passage {i} about pumps valves gaskets relay number {i % 97}" for i in range(n)]
tokens = [rng.choice(5000, 30, replace=False) for _ in range(n)]
weights = [rng.random(30).astype(np.float32) for _ in range(n)]
index = Index(dim=64, keywords=keywords)
ids = [str(i) for i in range(n)]
from llamaembed import SparseVector
sparse = [SparseVector.from_pairs(t, w) for t, w in zip(tokens, weights)]
started = time.perf_counter()
if hasattr(index, "add_encoded"):  # the one write path
    from llamaembed.store.encoder import Encoded
    index.add_encoded(Encoded(vectors, sparse if keywords == "sparse" else None), texts, None, ids)
else:  # before (since the typed outputs): add_vectors with the bge-m3 outputs beside
    m3 = (sparse, None) if keywords == "sparse" else None
    index.add_vectors(vectors, texts, None, ids, m3=m3)
print(json.dumps(time.perf_counter() - started))
"""


def store_only(checkout: Path, n: int, keywords: str) -> float:
    """Return the seconds one checkout's Index takes to add n prepared passages."""
    command = [sys.executable, "-c", STORE_ONLY, str(checkout), str(n), keywords]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=checkout)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--m3", type=Path, help="a bge-m3-shaped GGUF with its heads file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    models = {"MiniLM F16 (bm25)": gguf_paths()["f16"]}
    if args.m3 is not None:
        models["bge-m3-shaped (sparse)"] = args.m3
    sides = {"this": ROOT, "baseline": args.baseline.resolve()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in models.items():
            runs: dict[str, list[tuple[float, int, int]]] = {"this": [], "baseline": []}
            for number in range(args.rounds):
                order = list(sides) if number % 2 == 0 else list(reversed(sides))
                for side in order:
                    db = Path(tmp) / f"{side}-{label[:5]}-{number}"
                    runs[side].append(index_once(sides[side], model, db))
            ratios = [a[0] / b[0] for a, b in zip(runs["this"], runs["baseline"], strict=True)]
            rows.append(
                f"| {label} | {runs['this'][0][2]} | "
                f"{statistics.median(r[0] for r in runs['this']):.1f} | "
                f"{statistics.median(r[0] for r in runs['baseline']):.1f} | "
                f"{statistics.median(ratios):.3f} ({', '.join(f'{r:.3f}' for r in ratios)}) | "
                f"{runs['this'][0][1] / 1e6:.2f} / {runs['baseline'][0][1] / 1e6:.2f} |"
            )
            print(rows[-1], flush=True)
    print(
        "\n".join(
            [
                *machine_header(os.cpu_count() or 2),
                "",
                "| model (keywords) | passages | this s | baseline s "
                "| time × baseline, median (by round) | store.sqlite MB, this / baseline |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        )
    )


if __name__ == "__main__":
    main()
