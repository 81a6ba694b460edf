"""Random mutations of a GGUF file, aimed at its header, metadata and tensor table.

Used by test_gguf_check.py: each mutated file is opened in a fresh process (worker below),
which must end with our error or a working model, never a signal or a hang.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

from llamaembed.engine.gguf_check import scan

HUGE = (2**64 - 1, 2**63, 2**63 - 1, 2**32, 2**32 + 7, 2**40, 2**31, 2**31 - 1, 10**9)


def mutations(path: Path, count: int, seed: int) -> list[tuple[str, bytes]]:
    """Return ``count`` (description, mutated bytes) pairs of the file at ``path``."""
    original = path.read_bytes()
    header = scan(path, record=True)
    fields = header.u64_fields
    tokens = header.metadata["tokenizer.ggml.tokens"]
    rng = random.Random(seed)
    result: list[tuple[str, bytes]] = []
    kinds = ["bitflip", "bitflip", "bitflip", "truncate", "huge", "huge", "duplicate_token",
             "small_u64"]
    while len(result) < count:
        kind = kinds[len(result) % len(kinds)]
        data = bytearray(original)
        if kind == "bitflip":
            flips = rng.randint(1, 3)
            spots = [rng.randrange(0, header.data_offset) for _ in range(flips)]
            for spot in spots:
                data[spot] ^= 1 << rng.randrange(8)
            description = f"bitflip at {spots}"
        elif kind == "truncate":
            cut = rng.choice([rng.randrange(0, header.data_offset),
                              rng.randrange(header.data_offset, len(original))])
            data = data[:cut]
            description = f"truncate to {cut}"
        elif kind in ("huge", "small_u64"):
            spot = rng.choice(fields)
            old = struct.unpack_from("<Q", original, spot)[0]
            value = rng.choice(HUGE) if kind == "huge" else max(0, old + rng.choice([-2, -1, 1, 2]))
            struct.pack_into("<Q", data, spot, value)
            description = f"u64 at {spot}: {old} -> {value}"
        else:
            # make two tokens of the same length equal (llama-vocab.cpp's GGML_ASSERT)
            by_length: dict[int, list[int]] = {}
            for i, token in enumerate(tokens):
                by_length.setdefault(len(token), []).append(i)
            length = rng.choice([n for n, ids in by_length.items() if len(ids) > 1])
            a, b = rng.sample(by_length[length], 2)
            start = original.index(struct.pack("<Q", length) + tokens[b])
            data[start + 8 : start + 8 + length] = tokens[a]
            description = f"token {b} made equal to token {a} ({tokens[a]!r})"
        if bytes(data) != original:
            result.append((description, bytes(data)))
    return result


def worker(path: str) -> int:
    """Open the model and embed; print OK or OURS:<error>; let anything else escape."""
    from llamaembed import LlamaEmbedError
    from llamaembed.engine.llama import Llama

    try:
        with Llama(path, n_threads=1) as model:
            texts = ["hello world", " ".join(["the cat sat on the mat"] * 200), ""]
            if model.pooling.value == "rank":
                model.rerank("hello", texts)
            else:
                model.embed_texts(texts)
    except LlamaEmbedError as exc:
        print(f"OURS:{type(exc).__name__}: {exc}")
        return 0
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1]))
