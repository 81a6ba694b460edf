"""A bge-m3-shaped model: conversion time, file sizes, and memory by context length.

Builds an XLM-RoBERTa with bge-m3's shape (24 layers, 1024 wide, 16 heads, 4096 FFN,
8194 positions, 250,002 tokens) from random weights and a small SentencePiece
vocabulary (the rest of the 250,002 ids are padding entries; shape is what costs), converts
it with our converter (F16), quantises it to Q8_0, then, each in a fresh process, opens
the Q8_0 file at several contexts and reports peak RSS after loading, after embedding
a short text, and after embedding one input of the full context, with its time.

    python benchmarks/long_context.py [--work DIR] [--keep]   # about 8 minutes, 4 GB of disk
    python benchmarks/long_context.py --model FILE.gguf       # the memory table of a file
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SHAPE = {"hidden": 1024, "layers": 24, "heads": 16, "intermediate": 4096, "context": 8192}
VOCAB = 250_002


def build(folder: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file
    from tiny_xlmr import build_tiny_xlmr, train_sentencepiece

    spm_model = train_sentencepiece(folder.parent)
    build_tiny_xlmr(folder, spm_model, **SHAPE, seed=7)
    # Widen the vocabulary to bge-m3's 250,002 rows (ids past the trained pieces are
    # padding entries, as in any vocabulary padded to a round size).
    from safetensors.numpy import load_file

    weights = load_file(folder / "model.safetensors")
    rng = np.random.default_rng(8)
    weights["embeddings.word_embeddings.weight"] = (
        rng.standard_normal((VOCAB, SHAPE["hidden"]), dtype=np.float32) * 0.5
    )
    save_file(weights, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = VOCAB
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def peak_rss_mb() -> float:
    """Return this process's peak RSS (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str, n_ctx: int) -> None:
    """Run in a fresh process: load, embed short, embed one full-context input."""
    from llamaembed import Llama

    def peak_mb() -> float:
        return peak_rss_mb()

    report: dict[str, float] = {}
    started = time.perf_counter()
    llama = Llama(path, n_ctx=n_ctx) if n_ctx else Llama(path)
    report["n_ctx"] = llama.n_ctx
    report["load_s"] = time.perf_counter() - started
    report["rss_loaded_mb"] = peak_mb()
    llama.embed("a short query about memory safety")
    report["rss_short_mb"] = peak_mb()
    words = "memory safety matters in systems programming " * 4000
    tokens = llama.tokenize(words)[: llama.n_ctx]
    text = llama.detokenize(tokens)
    started = time.perf_counter()
    llama.embed(text)  # truncated to the context: a full-context input
    report["full_s"] = time.perf_counter() - started
    report["rss_full_mb"] = peak_mb()
    print(json.dumps(report))


def memory_table(q8: Path) -> None:
    """Print peak RSS and time by context, each measured in a fresh process."""
    print("| n_ctx | load s | RSS loaded MB | RSS after a short text MB "
          "| RSS after a full-context input MB | full-context input s |")
    print("|---|---|---|---|---|---|")
    for n_ctx in (512, 2048, 4096, 0):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(q8), str(n_ctx)],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        label = f"{r['n_ctx']:.0f}" + (" (default)" if n_ctx == 0 else "")
        print(f"| {label} | {r['load_s']:.2f} | {r['rss_loaded_mb']:.0f} | "
              f"{r['rss_short_mb']:.0f} | {r['rss_full_mb']:.0f} | {r['full_s']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "N_CTX"))
    parser.add_argument("--model", type=Path, help="measure this Q8_0 file; build nothing")
    parser.add_argument("--model", type=Path, help="measure this Q8_0 file; build nothing")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if args.model:
        memory_table(args.model)
        return
    from llamaembed import quantize

    work = args.work or Path(tempfile.mkdtemp(prefix="bge-m3-shape-"))
    folder = work / "bge-m3-shaped"
    try:
        started = time.perf_counter()
        build(folder)
        built_s = time.perf_counter() - started
        weights_gb = (folder / "model.safetensors").stat().st_size / 1e9
        f16 = work / "bge-m3-shaped-f16.gguf"
        started = time.perf_counter()
        convert_peak = subprocess.run(
            [sys.executable, "-c",
             "import sys; sys.path.insert(0, 'benchmarks'); from long_context import peak_rss_mb; "
             "from llamaembed import convert; "
             f"convert({str(folder)!r}, {str(f16)!r}, outtype='f16'); print(peak_rss_mb())"],
            check=True, capture_output=True, text=True,
        ).stdout.split()[-1]
        convert_s = time.perf_counter() - started
        q8 = work / "bge-m3-shaped-q8_0.gguf"
        started = time.perf_counter()
        quantize(f16, q8, "q8_0")
        quantize_s = time.perf_counter() - started
        print(f"random weights: {weights_gb:.2f} GB of F32 safetensors, built in {built_s:.0f} s")
        print(f"convert to F16: {convert_s:.1f} s, peak RSS {float(convert_peak):.0f} MB, "
              f"{f16.stat().st_size / 1e9:.2f} GB")
        print(f"quantise to Q8_0: {quantize_s:.1f} s, {q8.stat().st_size / 1e9:.2f} GB")
        print()
        memory_table(q8)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
