"""A Qwen3-Embedding-0.6B-shaped decoder: llamaembed F16 / Q8_0 / Q4_K_M against torch.

Builds a random Qwen3 model the shape of Qwen3-Embedding-0.6B (28 layers, 1024 wide, 16
query / 8 key-value heads of 128, 3072 FFN, 151,669 tokens, tied embeddings; the
tokenizer is the tests' small Qwen2-style BPE, so token counts are not Qwen's), saved as a
sentence-transformers folder with last-token pooling. llama.cpp's own converter writes the
F16 and BF16 GGUFs, llamaembed quantises the F16 one to Q8_0 and Q4_K_M ("-full": Q8_0 with
llama.cpp's whole graph, the projection onto the vocabulary that llamaembed skips
included, LLAMAEMBED_FULL_GRAPH=1). Each system then
runs in a fresh process with the same threads: sentence-transformers on torch (fp32, bf16)
and llamaembed.
It reports texts/s on short texts and on passages, the median latency of one short query,
peak RSS, and the cosine of each system's vectors to torch fp32's. Random weights: time,
memory and agreement mean something, retrieval quality does not.

    python benchmarks/decoder.py [--threads 2] [--work DIR] [--keep] [--write]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

SYSTEMS = (
    "st-fp32",
    "st-bf16",
    "llamaembed-f16",
    "llamaembed-bf16",
    "llamaembed-q8_0",
    "llamaembed-q8_0-full",
    "llamaembed-q4_k_m",
)
QUERIES = 20


def build(work: Path) -> dict[str, Path]:
    """Return the folder and its GGUFs, built once into ``work``."""
    folder = work / "qwen3-embedding-0.6b-shaped"
    if not (folder / "modules.json").exists():
        import torch
        from sentence_transformers import SentenceTransformer, models
        from tiny_decoders import QWEN_QUERY_PROMPT, build_qwen_tokenizer
        from transformers import Qwen3Config, Qwen3Model

        torch.manual_seed(0)
        folder.mkdir(parents=True, exist_ok=True)
        build_qwen_tokenizer(folder)
        config = Qwen3Config(
            vocab_size=151_669, hidden_size=1024, intermediate_size=3072,
            num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
            max_position_embeddings=32_768, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
            tie_word_embeddings=True, eos_token_id=0, pad_token_id=0,
        )  # fmt: skip
        Qwen3Model(config).save_pretrained(folder)
        st = SentenceTransformer(
            modules=[models.Transformer(str(folder), max_seq_length=512),
                     models.Pooling(1024, pooling_mode="lasttoken"), models.Normalize()],
            prompts={"query": QWEN_QUERY_PROMPT, "document": ""}, device="cpu",
        )  # fmt: skip
        st.save(str(folder))
    from llamaembed import convert, quantize

    paths = {"folder": folder}
    f16 = work / "qwen3-shaped-f16.gguf"
    if not f16.exists():
        convert(folder, f16, outtype="f16", pre_tokenizer="qwen2")
    paths["llamaembed-f16"] = f16
    bf16 = work / "qwen3-shaped-bf16.gguf"  # from the fp32 weights, not through F16
    if not bf16.exists():
        convert(folder, bf16, outtype="bf16", pre_tokenizer="qwen2")
    paths["llamaembed-bf16"] = bf16
    for qtype in ("q8_0", "q4_k_m"):
        target = work / f"qwen3-shaped-{qtype}.gguf"
        if not target.exists():
            quantize(f16, target, qtype)
        paths[f"llamaembed-{qtype}"] = target
    return paths


def texts() -> dict[str, list[str]]:
    """Return the text sets: 64 short texts and 16 passages (benchmarks.prepare)."""
    from benchmarks.prepare import text_sets

    sets = text_sets()
    return {"short": sets["short"][:64], "long": sets["long"][:16]}


def child(system: str, path: str, threads: int, out: str) -> None:
    """Embed every set, then single queries; write vectors and timings (fresh process)."""
    import numpy as np

    from benchmarks.long_context import peak_rss_mb

    if system.startswith("st-"):
        import torch

        torch.set_num_threads(threads)
        from sentence_transformers import SentenceTransformer

        dtype = torch.bfloat16 if system == "st-bf16" else torch.float32
        model = SentenceTransformer(path, device="cpu", model_kwargs={"torch_dtype": dtype})

        def encode(batch: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(model.encode(batch, batch_size=32), dtype=np.float32)
    else:
        import os

        from llamaembed import Llama
        from llamaembed.engine.llama import FULL_GRAPH_ENV

        if system.endswith("-full"):  # llama.cpp's whole graph: the vocabulary projection too
            os.environ[FULL_GRAPH_ENV] = "1"
        model = Llama(path, n_threads=threads, n_ctx=512)

        def encode(batch: list[str]) -> np.ndarray:
            return model.embed_texts(batch)

    report: dict[str, float] = {"rss_loaded_mb": peak_rss_mb()}
    outputs = {}
    sets = texts()
    for name, batch in sets.items():
        encode(batch[:2])  # warm-up
        started = time.perf_counter()
        outputs[name] = encode(batch)
        report[f"{name}_texts_per_s"] = len(batch) / (time.perf_counter() - started)
    latencies = []
    for query in sets["short"][:QUERIES]:
        started = time.perf_counter()
        encode([query])
        latencies.append(time.perf_counter() - started)
    report["query_p50_ms"] = 1000 * statistics.median(latencies)
    report["peak_rss_mb"] = peak_rss_mb()
    np.savez(out, **outputs)
    print(json.dumps(report))


def main() -> None:
    from run import child_arguments

    args = child_arguments(__doc__.split("\n")[0])
    if args.child:
        system, path, threads, out = args.child
        child(system, path, int(threads), out)
        return
    import numpy as np
    from run import machine_header, run_child, write_results

    work = args.work or Path(tempfile.mkdtemp(prefix="qwen3-shaped-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        paths = build(work)
        paths["llamaembed-q8_0-full"] = paths["llamaembed-q8_0"]
        sizes = {s: paths[s].stat().st_size / 1e6 for s in SYSTEMS if s.startswith("llamaembed")}
        reports, vectors = {}, {}
        for system in SYSTEMS:
            path = paths["folder"] if system.startswith("st-") else paths[system]
            out = work / f"{system}.npz"
            reports[system] = run_child(__file__, system, path, args.threads, out)
            vectors[system] = dict(np.load(out))
            print(system, reports[system], flush=True)
        base = reports["st-fp32"]
        lines = [*machine_header(args.threads), "",
                 "| system | file MB | short texts/s | passages/s | × torch fp32 (short, passages) "
                 "| one query p50 ms | peak RSS MB | min cos to torch fp32 (short, passages) |",
                 "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for system in SYSTEMS:
            r = reports[system]
            ratio = (f"{r['short_texts_per_s'] / base['short_texts_per_s']:.2f}×, "
                     f"{r['long_texts_per_s'] / base['long_texts_per_s']:.2f}×")  # fmt: skip
            agree = ", ".join(
                f"{(vectors[system][s] * vectors['st-fp32'][s]).sum(axis=1).min():.4f}"
                for s in ("short", "long")
            )
            weights = (paths["folder"] / "model.safetensors").stat().st_size / 1e6
            size = f"{sizes[system]:.0f}" if system in sizes else f"{weights:.0f} (fp32 file)"
            lines.append(
                f"| {system} | {size} | {r['short_texts_per_s']:.1f} | {r['long_texts_per_s']:.2f} "
                f"| {ratio} | {r['query_p50_ms']:.0f} | {r['peak_rss_mb']:.0f} | {agree} |"
            )
        report = "\n".join(lines)
        print(report)
        if args.write:
            from run import cpu_class

            write_results(
                report, f"python benchmarks/decoder.py --threads {args.threads} --write",
                f"decoder-{cpu_class()}", "## A Qwen3-Embedding-0.6B-shaped decoder against torch",
            )  # fmt: skip
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
