"""A Qwen3-Reranker-0.6B-shaped reranker: the vocabulary projection skipped against kept.

    python benchmarks/decoder_rerank.py [--threads 2] [--rounds 2]

Takes the Qwen3-Embedding-0.6B-shaped Q8_0 GGUF of benchmarks/decoder.py (built into
.cache/bench/qwen3-shaped) and makes it a reranker as llama.cpp's converter does for
Qwen3-Reranker: rank pooling, the labels "yes" and "no", a yes/no head ``cls.output``
(2 x 1024; random rows here, the converter takes them from the output matrix) and a
rerank template. Each system reranks 32 passages for a query in a fresh process,
``--rounds`` interleaved rounds, medians: llamaembed as it is (the graph ends at the
final norm and the head is applied in numpy), and with ``LLAMAEMBED_FULL_GRAPH=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.prepare import CACHE, text_sets  # noqa: E402

TEMPLATE = "<|im_start|>system\nJudge: yes or no.<|im_end|>\n{query}\n{document}\n"


def reranker() -> Path:
    import gguf

    target = CACHE / "qwen3-shaped" / "qwen3-reranker-shaped-q8_0.gguf"
    if target.exists():
        return target
    source = CACHE / "qwen3-shaped" / "qwen3-shaped-q8_0.gguf"
    if not source.exists():
        raise SystemExit("build it first: python benchmarks/decoder.py --work "
                         ".cache/bench/qwen3-shaped --keep")
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, "qwen3")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture",
                                                             "qwen3.pooling_type"):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_uint32("qwen3.pooling_type", 4)  # rank
    writer.add_array("qwen3.classifier.output_labels", ["yes", "no"])
    writer.add_string("tokenizer.chat_template.rerank", TEMPLATE)
    head = (np.random.default_rng(0).standard_normal((2, 1024)) * 0.05).astype(np.float32)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype,
                               tensor.data.nbytes, tensor.tensor_type)
    writer.add_tensor_info("cls.output.weight", head.shape, head.dtype, head.nbytes,
                           gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data)
    writer.write_tensor_data(head)
    writer.close()
    return target


def child(system: str, threads: int) -> dict:
    if system == "full-graph":
        os.environ["LLAMAEMBED_FULL_GRAPH"] = "1"
    from llamaembed import Llama

    docs = text_sets()["long"][:32]
    with Llama(reranker(), n_threads=threads, n_ctx=512) as model:
        model.rerank("how do I open a network connection", docs[:2])
        start = time.perf_counter()
        scores = model.rerank("how do I open a network connection", docs)
        seconds = time.perf_counter() - start
        skips = model.projection_skips
    np.save(CACHE / f"rerank-shaped-{system}.npy", scores)
    return {"pairs_per_s": len(docs) / seconds, "skips": skips}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    reranker()
    runs: dict[str, list[dict]] = {"skipped": [], "full-graph": []}
    for _ in range(args.rounds):
        for system in runs:
            out = subprocess.run([sys.executable, __file__, "--child", system, str(args.threads)],
                                 capture_output=True, text=True, check=True)
            runs[system].append(json.loads(out.stdout.strip().splitlines()[-1]))
    from benchmarks.run import machine_header

    a, b = (np.load(CACHE / f"rerank-shaped-{s}.npy") for s in runs)
    rates = {s: statistics.median(r["pairs_per_s"] for r in rs) for s, rs in runs.items()}
    print("\n".join(machine_header(args.threads)))
    print("\n| llamaembed | pairs/s (32 passages of 120-250 tokens) |\n|---|---|")
    for system, value in rates.items():
        each = ", ".join(f"{r['pairs_per_s']:.2f}" for r in runs[system])
        print(f"| {system} | {value:.2f} ({each}) |")
    print(f"\nspeed-up {rates['skipped'] / rates['full-graph']:.2f}x; "
          f"max |score difference| {np.abs(a - b).max():.1e}; "
          f"micro-batches that ended early: {runs['skipped'][0]['skips']}")


if __name__ == "__main__":
    main()
