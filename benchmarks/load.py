"""MiniLM F16 load time: no validation, first load (full header scan), later loads (stamp).

    python benchmarks/load.py PATH-TO-MiniLM-F16.gguf

Each round opens the model three ways, interleaved: with GGUF validation switched off,
as a first load (a fresh copy of the file, so a full header scan) and as a later load
(the stamp left by an earlier scan). Medians of 15 rounds; ratios against "off".
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["LLAMAEMBED_CACHE"] = tempfile.mkdtemp()

from llamaembed.engine import _handles, _native, gguf_check


def load(source: Path, mode: str, i: int) -> float:
    path = source
    if mode == "first":  # a new file identity each time: full scan
        path = Path(os.environ["LLAMAEMBED_CACHE"]) / f"copy{i}.gguf"
        shutil.copy(source, path)
    original = gguf_check.check
    if mode == "off":
        gguf_check.check = lambda file: None
    try:
        started = time.perf_counter()
        model = _handles.NativeModel(path)
        elapsed = time.perf_counter() - started
        model.close()
    finally:
        gguf_check.check = original
    return elapsed


def main() -> None:
    source = Path(sys.argv[1])
    _native.lib()
    results: dict[str, list[float]] = {"off": [], "first": [], "later": []}
    for i in range(15):
        for mode, times in results.items():
            times.append(load(source, mode, i))
    base = statistics.median(results["off"])
    for mode, times in results.items():
        median = statistics.median(times)
        print(f"{mode:6s} {median * 1000:6.1f} ms  ratio {median / base:.3f}")


if __name__ == "__main__":
    main()
