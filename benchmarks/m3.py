"""bge-m3's three outputs on a bge-m3-shaped model: llamaembed F16 / Q8_0 against FlagEmbedding.

Builds the random bge-m3-shaped XLM-RoBERTa of ``long_context.py`` (24 layers, 1024 wide,
16 heads, 4096 FFN, 250,002 tokens) plus random ``sparse_linear.pt`` (1024 → 1) and
``colbert_linear.pt`` (1024 → 1024) saved by ``torch.save``, converts it with our
converter (F32, F16), quantises it (Q8_0), then, each system in a fresh process with the same
threads, computes dense + lexical + ColBERT outputs of the same texts: texts/s and peak
RSS. Agreement with FlagEmbedding (dense and ColBERT cosine, lexical weights) is printed
beside, with llama.cpp's flash attention (the default) and without it. Random weights:
time, memory and agreement mean something; retrieval quality does not (``m3_quality.py``).

    python benchmarks/m3.py [--threads 2] [--work DIR] [--keep] [--write]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SYSTEMS = (
    "flagembedding-fp32",
    "llamaembed-f32",
    "llamaembed-f32-no-flash",
    "llamaembed-f16",
    "llamaembed-f16-no-flash",
    "llamaembed-q8_0",
    "llamaembed-q8_0-no-flash",
)


def build(work: Path) -> dict[str, Path]:
    """Return the folder and its F16 / Q8_0 GGUFs (with heads), built once into ``work``."""
    from long_context import build as build_shape

    folder = work / "bge-m3-shaped"
    if not (folder / "colbert_linear.pt").exists():
        import torch

        build_shape(folder)
        torch.manual_seed(11)
        torch.save(torch.nn.Linear(1024, 1).state_dict(), folder / "sparse_linear.pt")
        torch.save(torch.nn.Linear(1024, 1024).state_dict(), folder / "colbert_linear.pt")
    from llamaembed import convert, quantize

    f32, f16 = work / "bge-m3-shaped-f32.gguf", work / "bge-m3-shaped-f16.gguf"
    q8 = work / "bge-m3-shaped-q8_0.gguf"
    if not f32.exists():
        convert(folder, f32, outtype="f32")
    if not f16.exists():
        convert(folder, f16, outtype="f16")
    if not q8.exists():
        quantize(f16, q8, "q8_0")
    return {"folder": folder, "llamaembed-f32": f32, "llamaembed-f16": f16, "llamaembed-q8_0": q8}


def texts() -> dict[str, list[str]]:
    """Return the text sets: 200 short texts (10–20 tokens) and 40 passages (120–250)."""
    from benchmarks.prepare import text_sets

    sets = text_sets()
    return {"short": sets["short"][:200], "long": sets["long"][:40]}


def child(system: str, path: str, threads: int, out: str) -> None:
    """Encode every set with all three outputs; write outputs and timings (fresh process)."""
    import numpy as np

    from benchmarks.long_context import peak_rss_mb

    report: dict[str, object] = {}
    outputs: dict[str, object] = {}
    if system == "flagembedding-fp32":
        import torch

        torch.set_num_threads(threads)
        from FlagEmbedding import BGEM3FlagModel

        model = BGEM3FlagModel(path, use_fp16=False, devices="cpu")

        def encode(batch: list[str]) -> dict:
            return model.encode(batch, batch_size=32, max_length=512, return_dense=True,
                                return_sparse=True, return_colbert_vecs=True)
    else:
        from llamaembed import Llama

        # llamaembed's default runs flash attention, whose CPU kernel rounds K and V to F16
        flash = not system.endswith("-no-flash")
        model = Llama(path, n_threads=threads, n_ctx=512, flash_attn=flash)

        def encode(batch: list[str]) -> dict:
            return model.encode_m3(batch, return_colbert_vecs=True)

    report["rss_loaded_mb"] = peak_rss_mb()
    for name, batch in texts().items():
        encode(batch[:4])  # warm-up
        started = time.perf_counter()
        result = encode(batch)
        report[f"{name}_texts_per_s"] = len(batch) / (time.perf_counter() - started)
        outputs[name] = {
            "dense": np.asarray(result["dense_vecs"], dtype=np.float32),
            "lexical": [{k: float(v) for k, v in w.items()} for w in result["lexical_weights"]],
            "colbert": [np.asarray(m, dtype=np.float32) for m in result["colbert_vecs"]],
        }
    report["peak_rss_mb"] = peak_rss_mb()
    import pickle

    Path(out).write_bytes(pickle.dumps(outputs))
    print(json.dumps(report))


def agreement(ours: dict, reference: dict) -> str:
    """Return dense / ColBERT cosine minima and the lexical weights' largest relative error."""

    dense = (ours["dense"] * reference["dense"]).sum(axis=1).min()
    colbert = min(
        float((a * b).sum(axis=1).min())
        for a, b in zip(ours["colbert"], reference["colbert"], strict=True)
    )
    worst = 0.0
    for a, b in zip(ours["lexical"], reference["lexical"], strict=True):
        for key, value in b.items():
            if value > 0.05:
                worst = max(worst, abs(a.get(key, 0.0) - value) / value)
    return f"dense ≥ {dense:.5f}, ColBERT ≥ {colbert:.4f}, lexical (> 0.05) ≤ {worst:.1%}"


def main() -> None:
    from run import child_arguments

    args = child_arguments(__doc__.split("\n")[0])
    if args.child:
        system, path, threads, out = args.child
        child(system, path, int(threads), out)
        return
    import pickle

    from run import machine_header, run_child, write_results

    work = args.work or Path(tempfile.mkdtemp(prefix="bge-m3-heads-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        paths = build(work)
        reports, outputs = {}, {}
        for system in SYSTEMS:
            key = system.removesuffix("-no-flash")
            path = paths["folder"] if system.startswith("flag") else paths[key]
            out = work / f"{system}.pkl"
            reports[system] = run_child(__file__, system, path, args.threads, out)
            outputs[system] = pickle.loads(out.read_bytes())
        reference = reports["flagembedding-fp32"]
        lines = [*machine_header(args.threads), "",
                 "| system | short texts/s | passages/s | × FlagEmbedding (short, passages) "
                 "| peak RSS MB | agreement with FlagEmbedding (short and passages) |",
                 "|---|---|---|---|---|---|"]
        for system in SYSTEMS:
            r = reports[system]
            ratio = (f"{r['short_texts_per_s'] / reference['short_texts_per_s']:.2f}×, "
                     f"{r['long_texts_per_s'] / reference['long_texts_per_s']:.2f}×")
            agree = "reference" if system.startswith("flag") else "; ".join(
                agreement(outputs[system][s], outputs["flagembedding-fp32"][s])
                for s in ("short", "long")
            )
            lines.append(f"| {system} | {r['short_texts_per_s']:.1f} | {r['long_texts_per_s']:.2f} "
                         f"| {ratio} | {r['peak_rss_mb']:.0f} | {agree} |")
        report = "\n".join(lines)
        print(report)
        if args.write:
            write_results(report, f"python benchmarks/m3.py --threads {args.threads} --write",
                          "m3", "## bge-m3's three outputs (dense, lexical, ColBERT)")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
