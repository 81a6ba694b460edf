"""Short-text levers tried and not adopted (issues 37, 41): contexts, tile packing, n_batch.

    python benchmarks/levers.py [--rounds 2]

MiniLM (the Q8_0 and F16 GGUFs of benchmarks/prepare.py), the 400 short texts of
benchmarks/short_texts.py, one process, rounds interleaved:

- **contexts x threads**: 2 x 1 (the rule) against 3 x 1 and 4 x 1 on the same two cores.
- **tile-aligned packing**: llama.cpp's tiled flash attention skips a 64 x 64 tile of the
  packed micro-batch only when its mask is all -inf. Packing texts first-fit into 64-token
  tiles, each padded by a filler sequence whose output is dropped, lets every tile across
  two tiles' texts be skipped; 128, 192 and 256 tokens a micro-batch, against today's
  packing at 128.
- **n_batch on the bge-base size** (issue 41): its graph is two thirds weight matmuls,
  which run a little faster on longer micro-batches, so 256 and 512 tokens a micro-batch
  against 128 (two contexts, Q8_0, the GGUF of benchmarks/short_texts.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.prepare import gguf_paths  # noqa: E402
from benchmarks.run import machine_header  # noqa: E402
from benchmarks.short_texts import ggufs, texts  # noqa: E402

TILE = 64


def plan_tiles(lengths: list[int], tiles_per_batch: int) -> list[list[tuple[list[int], int]]]:
    """First-fit decreasing into 64-token tiles; each tile is (texts, filler tokens)."""
    bins: list[list] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for b in bins:
            if b[0] + lengths[i] <= TILE:
                b[0] += lengths[i]
                b[1].append(i)
                break
        else:
            bins.append([lengths[i], [i]])
    return [[(b[1], TILE - b[0]) for b in bins[k:k + tiles_per_batch]]
            for k in range(0, len(bins), tiles_per_batch)]


def aligned(model, sequences: list[np.ndarray], tiles_per_batch: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    from llamaembed.engine.contexts import run_split

    width = model.n_embd
    out = np.empty((len(sequences), width), np.float32)
    batches = plan_tiles([len(s) for s in sequences], tiles_per_batch)

    def one(context, b: int) -> None:  # type: ignore[no-untyped-def]
        group, where = [], []
        for members, pad in batches[b]:
            for i in members:
                group.append(sequences[i])
                where.append(i)
            if pad:
                group.append(np.zeros(pad, np.int32))
                where.append(-1)
        rows = context.pooled(group, width)
        keep = [j for j, i in enumerate(where) if i >= 0]
        out[[where[j] for j in keep]] = rows[keep]

    run_split(model._pool.workers(len(batches)), len(batches), one)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def rate(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    from llamaembed import Llama

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    short = texts()["short"]
    rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for threads in (2, 3, 4):
            with Llama(gguf_paths()["q8_0"], n_threads=threads, n_contexts=threads) as m:
                rows.setdefault(f"Q8_0, {threads} x 1 contexts", []).append(
                    rate(lambda: m.embed_texts(short), len(short)))
        for kind in ("q8_0", "f16"):
            with Llama(gguf_paths()[kind], n_threads=2) as m:
                sequences = m.prepare_texts(short)
                reference = m.embed_texts(short)
                rows.setdefault(f"{kind.upper()}, packed at 128 (today)", []).append(
                    rate(lambda: m.embed_texts(short), len(short)))
                for tiles in (2, 3, 4):
                    label = f"{kind.upper()}, tile-aligned at {tiles * TILE}"
                    rows.setdefault(label, []).append(
                        rate(lambda: aligned(m, sequences, tiles), len(short)))  # noqa: B023
                    cos = float((aligned(m, sequences, tiles) * reference).sum(1).min())
                    rows.setdefault(f"{label} min cos", []).append(cos)
        for n_batch in (128, 256, 512):
            with Llama(ggufs("base")["q8_0"], n_threads=2, n_batch=n_batch) as m:
                rows.setdefault(f"bge-base size, Q8_0, n_batch {n_batch}", []).append(
                    rate(lambda: m.embed_texts(short), len(short)))
    print("\n".join(machine_header(2)))
    print("\n| lever | short texts/s (each round) |\n|---|---|")
    for label, values in rows.items():
        if label.endswith("min cos"):
            continue
        cos = rows.get(f"{label} min cos")
        extra = f" (min cosine to today's {min(cos):.6f})" if cos else ""
        print(f"| {label} | {' / '.join(f'{v:.0f}' for v in values)}{extra} |")


if __name__ == "__main__":
    main()
