"""Where the time goes: llama.cpp's graph nodes timed one by one, plus tokenisation and Python.

    python benchmarks/profile_ops.py [--types q8_0,f16] [--write]
    python benchmarks/profile_ops.py --n-batch 64,128,256,512   # short texts only, printed

For MiniLM and the bge-base-sized BERT of benchmarks/short_texts.py, on the 400 short
texts and the 60 passages, with one thread (one context of the two-context split).

llama.cpp's graph-evaluation callback (``cb_eval`` in the context parameters) is asked
about every node; answering yes makes the scheduler compute the graph one node at a
time and call back after each, so the time between two callbacks is that node's. Nodes
are grouped: weight matmuls by the weight's type, matmuls of activations (attention
scores and mixing, mean pooling), flash attention, softmax, norms, activations (GELU),
element-wise adds and multiplies, row lookups (embeddings), and copies/views. Stepping
node by node costs a little per node; the table gives the profiled total beside the
plain decode time, and the rest of ``embed_texts`` (tokenisation, batching, pooling
read-back, normalisation: our Python) measured apart.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.run import machine_header, write_results  # noqa: E402
from benchmarks.short_texts import ggufs, texts  # noqa: E402


class Tensor(ctypes.Structure):
    """The head of ggml.h's ``struct ggml_tensor`` (GGML_MAX_DIMS 4, MAX_SRC 10)."""

    _fields_ = [
        ("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p), ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
    ]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p)
FREE_OPS = {"VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE", "NONE"}


def ggml_library() -> ctypes.CDLL:
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_op_name.restype = ctypes.c_char_p
    lib.ggml_op_name.argtypes = [ctypes.c_int]
    lib.ggml_type_name.restype = ctypes.c_char_p
    lib.ggml_type_name.argtypes = [ctypes.c_int]
    return lib


def group_of(lib: ctypes.CDLL, t: Tensor) -> str:
    op = lib.ggml_op_name(t.op).decode()
    if t.name == b"result_output":  # a decoder's projection onto the vocabulary
        return "output projection onto the vocabulary (decoders)"
    if op == "MUL_MAT":
        src0 = Tensor.from_address(t.src[0])
        name = src0.name.decode(errors="replace")
        if name.startswith("blk.") or name.startswith("token_") or "weight" in name:
            return f"matmul, {lib.ggml_type_name(src0.type).decode().upper()} weights"
        return "matmul of activations (attention, pooling)"
    if op == "FLASH_ATTN_EXT":
        return "flash attention"
    if op in ("SOFT_MAX",):
        return "softmax"
    if op in ("NORM", "RMS_NORM"):
        return "norms"
    if op in ("UNARY", "GELU", "GLU"):
        return "activations (GELU)"
    if op in ("ADD", "MUL", "SCALE", "ADD1", "SUB", "DIV"):
        return "element-wise add / mul / scale"
    if op == "GET_ROWS":
        return "row lookups (embeddings, outputs)"
    if op in ("CPY", "CONT", "DUP"):
        return "copies (cont, cpy)"
    if op in FREE_OPS:
        return "views (free)"
    return f"other ({op})"


def profile(
    path: Path, sequences: list[np.ndarray], n_embd: int, pooling: int, budget: int
) -> dict[str, float]:
    """Decode the sequences as llamaembed packs them, one thread; return seconds per group."""
    import llama_cpp

    from llamaembed.engine.layout import plan_batches

    lib = ggml_library()
    times: dict[str, float] = defaultdict(float)
    mark = [0.0]

    def on_node(tensor: int, ask: bool, _: int) -> bool:
        if ask:
            return True
        now = time.perf_counter()
        t = Tensor.from_address(tensor)
        times[group_of(lib, t)] += now - mark[0]
        mark[0] = time.perf_counter()
        return True

    callback = CALLBACK(on_node)
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    result = {}
    for label, cb in (("plain", None), ("profiled", callback)):
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = max(512, *map(len, sequences))
        cparams.n_seq_max = 64
        cparams.n_threads = cparams.n_threads_batch = 1
        cparams.embeddings = True
        cparams.pooling_type = pooling
        cparams.kv_unified = True
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if cb is not None:
            cparams.cb_eval = ctypes.cast(cb, type(cparams.cb_eval))
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        batch = llama_cpp.llama_batch_init(cparams.n_ubatch, 0, 1)
        decode_s = 0.0
        times.clear()
        for group in plan_batches([len(s) for s in sequences], budget, 64):
            n = 0
            for seq, i in enumerate(group):
                for pos, token in enumerate(sequences[i]):
                    batch.token[n], batch.pos[n], batch.n_seq_id[n] = int(token), pos, 1
                    batch.seq_id[n][0], batch.logits[n] = seq, 1
                    n += 1
            batch.n_tokens = n
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            start = mark[0] = time.perf_counter()
            assert llama_cpp.llama_decode(ctx, batch) == 0
            for seq in range(len(group)):
                np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(ctx, seq),
                                      shape=(n_embd,)).copy()
            decode_s += time.perf_counter() - start
        result[f"{label}_decode_s"] = decode_s
        if cb is not None:
            result.update(times)
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return result


def one(model: str, kind: str, label: str) -> dict[str, float]:
    from llamaembed import Llama

    path = decoder_gguf(kind) if model == "qwen3" else ggufs(model)[kind]
    data = texts()[label]
    if model == "qwen3":  # a 0.6B model on one thread: a sample keeps it to minutes
        data = data[:100] if label == "short" else data[:12]
    with Llama(path, n_threads=1, n_contexts=1, warn_pooling=False) as llama:
        start = time.perf_counter()
        sequences = llama.prepare_texts(data)
        tokenize_s = time.perf_counter() - start
        llama.embed_texts(data[:16])
        start = time.perf_counter()
        llama.embed_texts(data)
        total_s = time.perf_counter() - start
        n_embd, pooling = llama.n_embd, llama.pooling.llama_code
        budget = llama.params.n_batch
    result = profile(path, sequences, n_embd, pooling, budget)
    result.update(tokenize_s=tokenize_s, total_s=total_s, n=len(data),
                  tokens=sum(len(s) for s in sequences))
    return result


def sweep(model: str, kind: str, budgets: list[int]) -> str:
    """The short texts' graph by micro-batch size: where each size's time goes."""
    from llamaembed import Llama

    path, data = ggufs(model)[kind], texts()["short"]
    with Llama(path, n_threads=1, n_contexts=1, warn_pooling=False) as llama:
        sequences = llama.prepare_texts(data)
        n_embd, pooling = llama.n_embd, llama.pooling.llama_code
    parts = ("flash attention", "activations (GELU)")
    weights = f"matmul, {kind.upper()} weights"
    lines = [f"{model}, {kind.upper()}, short texts, one thread (ms per 100 texts):", "",
             f"| n_batch | decode | {weights} | {' | '.join(parts)} | the rest |",
             "|---|---|---|---|---|---|"]
    for budget in budgets:
        r = profile(path, sequences, n_embd, pooling, budget)
        graph = sum(v for k, v in r.items() if not k.endswith("_decode_s"))
        named = [r.get(weights, 0.0), *(r.get(p, 0.0) for p in parts)]
        cells = [r["plain_decode_s"], *named, graph - sum(named)]
        lines.append(f"| {budget} | " + " | ".join(f"{1e5 * c / len(data):.1f}" for c in cells)
                     + " |")
    return "\n".join(lines)


def decoder_gguf(kind: str) -> Path:
    """The Qwen3-Embedding-0.6B-shaped decoder of benchmarks/decoder.py (built once)."""
    from benchmarks.decoder import build
    from benchmarks.prepare import CACHE

    return build(CACHE / "qwen3-shaped")[f"llamaembed-{kind}"]


def table(model: str, kind: str, runs: dict[str, dict[str, float]]) -> str:
    skip = {"plain_decode_s", "profiled_decode_s", "tokenize_s", "total_s", "n", "tokens"}
    groups = sorted({g for r in runs.values() for g in r if g not in skip},
                    key=lambda g: -runs["short"].get(g, 0))
    lines = [f"{model}, {kind.upper()}, one thread (ms per 100 texts; share of the profiled "
             "graph):", "",
             "| part | short texts | share | passages | share |", "|---|---|---|---|---|"]

    def cell(r: dict[str, float], seconds: float, total: float) -> str:
        return f"{1e5 * seconds / r['n']:.2f} | {100 * seconds / total:.1f}%"

    totals = {k: sum(v for g, v in r.items() if g not in skip) for k, r in runs.items()}
    for g in groups:
        short, passages = runs["short"], runs["passages"]
        lines.append(f"| {g} | {cell(short, short.get(g, 0), totals['short'])}"
                     f" | {cell(passages, passages.get(g, 0), totals['passages'])} |")
    for name, key in (("graph, node by node (sum above)", None),
                      ("decode without the callback", "plain_decode_s"),
                      ("tokenisation (ours + llama.cpp's)", "tokenize_s"),
                      ("embed_texts end to end", "total_s")):
        row = [f"{1e5 * (totals[k] if key is None else runs[k][key]) / runs[k]['n']:.2f} | "
               for k in ("short", "passages")]
        lines.append(f"| {name} | {row[0]} | {row[1]} |")
    rest = {k: runs[k]["total_s"] - runs[k]["plain_decode_s"] - runs[k]["tokenize_s"]
            for k in runs}
    lines.append(f"| the rest of embed_texts (our Python: batching, read-back, normalising) | "
                 f"{1e5 * rest['short'] / runs['short']['n']:.2f} | "
                 f"{100 * rest['short'] / runs['short']['total_s']:.1f}% of end to end | "
                 f"{1e5 * rest['passages'] / runs['passages']['n']:.2f} | "
                 f"{100 * rest['passages'] / runs['passages']['total_s']:.1f}% of end to end |")
    tok = {k: runs[k]["tokens"] / runs[k]["n"] for k in runs}
    lines.append(f"\nTokens per text: short {tok['short']:.1f}, passages {tok['passages']:.1f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--types", default="q8_0")
    parser.add_argument("--models", default="minilm,base")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--n-batch", help="micro-batch sizes to compare (short texts only)")
    args = parser.parse_args()
    parts = [*machine_header(1), ""]
    if args.n_batch:
        budgets = [int(b) for b in args.n_batch.split(",")]
        for model in args.models.split(","):
            for kind in args.types.split(","):
                parts += [sweep(model, kind, budgets), ""]
        print("\n".join(parts))
        return
    for model in args.models.split(","):
        for kind in args.types.split(","):
            runs = {label: one(model, kind, label) for label in ("short", "passages")}
            parts += [table(model, kind, runs), ""]
    text = "\n".join(parts)
    print(text)
    if args.write:
        from benchmarks.run import cpu_class

        write_results(text, "python benchmarks/profile_ops.py " + " ".join(sys.argv[1:]),
                      f"profile-{cpu_class()}", heading="## Where the time goes (issue 37)")


if __name__ == "__main__":
    main()
