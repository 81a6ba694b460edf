"""The static tier against Model2Vec, distilling the same teacher (all-MiniLM-L6-v2).

    python benchmarks/static.py [--rounds 3] [--dims 256] [--write]

Side by side, in one run on one machine:
- distillation: llamaembed's ``distill`` (llama.cpp teacher, the auto weight type) with
  Zipf weights and with corpus weights, and Model2Vec's own ``distill`` (torch, fp32
  teacher), each in its own process: seconds and peak RSS (VmHWM);
- encoding speed: short texts (10-20 tokens of real English) per second in one process,
  llamaembed's ``StaticModel`` on its folder and ``model2vec.StaticModel.encode`` on
  Model2Vec's, ``--rounds`` interleaved rounds (medians), plus each process's peak RSS;
- quality as agreement with the teacher: Spearman correlation between a static model's
  cosines and sentence-transformers' (the teacher in torch fp32) over sentence pairs from
  the standard library's docstrings (half neighbouring sentences, half random pairs).
The corpus for the corpus-weighted variant is the other half of those docstring
sentences: no pair sentence is in it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
    text_sets,
)
from benchmarks.run import cpu_class, machine_header, write_results  # noqa: E402

OUT = CACHE / "static"
N_PAIRS = 3000
N_SPEED = 100_000  # short texts per timed call
CONTROL = "control: llamaembed's PCA and weights on torch's teacher outputs"
CONTROL_BF16 = "control, torch's teacher with its weights rounded to BF16"


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def split_sentences() -> tuple[list[str], list[str]]:
    """Return (evaluation sentences, corpus sentences): alternate docstring sentences."""
    sentences = [s for s in _sentences() if 30 <= len(s) <= 400]
    return sentences[0::2], sentences[1::2]


def pairs(sentences: list[str]) -> list[tuple[str, str]]:
    rng = random.Random(0)
    half = N_PAIRS // 2
    neighbours = [(sentences[i], sentences[i + 1]) for i in range(half)]
    randoms = [tuple(rng.sample(sentences, 2)) for _ in range(N_PAIRS - half)]
    return neighbours + randoms  # type: ignore[return-value]


# ----------------------------------------------------------------------------- workers
def worker_distill(kind: str, target: str, teacher: str, dims: int, corpus: str) -> dict:
    start = time.perf_counter()
    if kind == "model2vec":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from model2vec.distill import distill

        distill(teacher, pca_dims=dims).save_pretrained(target)
    else:
        from llamaembed import distill

        distill(teacher, target, dims=dims, corpus=corpus if kind == "corpus" else None)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": vm_hwm_mb()}


def worker_encode(kind: str, folder: str, texts_file: str) -> dict:
    texts = json.loads(Path(texts_file).read_text())
    if kind == "model2vec":
        from model2vec import StaticModel as M2V

        model = M2V.from_pretrained(folder)
        encode = model.encode
    else:
        from llamaembed import StaticModel

        encode = StaticModel(folder).embed_texts
    encode(texts[:20_000])  # warm-up: caches, allocator
    times = []
    for _ in range(3):
        start = time.perf_counter()
        vectors = encode(texts)
        times.append(time.perf_counter() - start)
    assert len(vectors) == len(texts)
    return {"texts_per_s": len(texts) / min(times), "peak_rss_mb": vm_hwm_mb()}


def run_worker(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"worker {args} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- quality
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def pair_cosines(vectors: np.ndarray, n: int) -> np.ndarray:
    left, right = vectors[:n], vectors[n:]
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return (left * right).sum(axis=1) / np.maximum(norms, 1e-12)


def numerics_spread(
    theirs: Path, ours: Path, texts: list[str], n: int, reference: np.ndarray
) -> tuple[float, float, float, float]:
    """How far agreement moves under differences the size of the teachers' numerics.

    The two folders' token vectors differ (per row) about as llama.cpp's forward pass
    differs from torch's. Model2Vec's own vectors, given random noise of that size 20
    times, show how much agreement moves from such differences alone. Returns (median
    row cosine between the folders, the agreements' standard deviation, min, max).
    """
    from model2vec import StaticModel as M2V

    model = M2V.from_pretrained(theirs)
    base = np.asarray(model.embedding, dtype=np.float32)
    other = np.asarray(M2V.from_pretrained(ours).embedding, dtype=np.float32)
    other = other * np.sign((base * other).sum(axis=0))  # PCA axes have arbitrary signs
    rows = (base * other).sum(1) / (np.linalg.norm(base, axis=1) * np.linalg.norm(other, axis=1))
    row_cos = float(np.median(rows))
    scale = np.sqrt(2 * (1 - row_cos) / base.shape[1]) * np.linalg.norm(base, axis=1)[:, None]
    rng = np.random.default_rng(0)
    values = []
    for _ in range(20):
        model.embedding = base + rng.standard_normal(base.shape).astype(np.float32) * scale
        values.append(spearman(pair_cosines(model.encode(texts), n), reference))
    return row_cos, float(np.std(values)), float(min(values)), float(max(values))


def torch_teacher_vectors(teacher_gguf: Path, bf16_weights: bool = False) -> np.ndarray:
    """The teacher pass of the distillation done by torch (fp32) instead of llama.cpp.

    Same vocabulary, same ``[CLS] token [SEP]`` sequences, mean over the three positions:
    the rows llamaembed's ``distill`` gets from llama.cpp, computed with torch's arithmetic.
    ``bf16_weights`` rounds the weights to BF16 first (the auto type's storage) and keeps
    the fp32 arithmetic and exact GELU: what an exact second engine reading it would get.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from llamaembed.static.distill import teacher_vocabulary

    ids = teacher_vocabulary(teacher_gguf).ids
    folder = str(minilm_folder())
    hf_tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    if bf16_weights:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.to(torch.bfloat16).to(torch.float32))
    out = np.empty((len(ids), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(ids), 1024):
            chunk = ids[start : start + 1024]
            column = np.ones(len(chunk), dtype=np.int64)
            batch = torch.tensor(np.stack([column * hf_tokenizer.cls_token_id, chunk,
                                           column * hf_tokenizer.sep_token_id], axis=1))
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch),
                           token_type_ids=torch.zeros_like(batch)).last_hidden_state
            out[start : start + len(chunk)] = hidden.mean(dim=1).numpy()
    return out


def recipe_control(
    zipf_folder: Path, teacher_gguf: Path, dims: int, bf16_weights: bool = False
) -> object:
    """llamaembed's PCA and Zipf weights applied to torch's teacher outputs.

    Returns a model2vec model on the Zipf folder's tokenizer with those rows: if it
    matches Model2Vec's agreement, the recipe is the same and any gap is the teacher's
    arithmetic.
    """
    from model2vec import StaticModel as M2V

    from llamaembed.static.distill import pca, sif_weights, zipf_probabilities

    rows = pca(torch_teacher_vectors(teacher_gguf, bf16_weights), dims)
    weights = sif_weights(zipf_probabilities(len(rows)), 1e-4).astype(np.float32)
    model = M2V.from_pretrained(zipf_folder)
    model.embedding = (rows * weights[:, None]).astype(np.float32)
    return model


def agreement(
    folders: dict[str, Path], eval_pairs: list[tuple[str, str]], teacher_gguf: Path, dims: int
) -> dict[str, float]:
    from model2vec import StaticModel as M2V
    from sentence_transformers import SentenceTransformer

    texts = [a for a, _ in eval_pairs] + [b for _, b in eval_pairs]
    n = len(eval_pairs)
    teacher = SentenceTransformer(str(minilm_folder()), device="cpu")
    reference = pair_cosines(teacher.encode(texts, batch_size=64), n)
    scores = {}
    static_cosines = {}
    for name, folder in folders.items():
        vectors = M2V.from_pretrained(folder).encode(texts)
        static_cosines[name] = pair_cosines(vectors, n)
        scores[name] = spearman(static_cosines[name], reference)
    # Is the Zipf-weighted difference from Model2Vec more than noise? A paired bootstrap
    # over the pairs gives a 95% interval of (ours - Model2Vec).
    rng = np.random.default_rng(0)
    ours_c = static_cosines["llamaembed (Zipf weights)"]
    theirs_c = static_cosines["Model2Vec distill (Zipf weights)"]
    differences = []
    for _ in range(1000):
        pick = rng.integers(0, n, size=n)
        differences.append(spearman(ours_c[pick], reference[pick])
                           - spearman(theirs_c[pick], reference[pick]))
    low, high = np.percentile(differences, [2.5, 97.5])
    scores["difference interval"] = (float(low), float(high))  # type: ignore[assignment]
    scores["numerics spread"] = numerics_spread(  # type: ignore[assignment]
        folders["Model2Vec distill (Zipf weights)"], folders["llamaembed (Zipf weights)"],
        texts, n, reference,
    )
    for name, bf16 in ((CONTROL, False), (CONTROL_BF16, True)):
        control = recipe_control(folders["llamaembed (Zipf weights)"], teacher_gguf, dims, bf16)
        scores[name] = spearman(pair_cosines(control.encode(texts), n), reference)  # type: ignore[attr-defined]
    from llamaembed import StaticModel

    ours = StaticModel(folders["llamaembed (Zipf weights)"]).embed_texts(texts)
    scores["llamaembed StaticModel (its own loader)"] = spearman(pair_cosines(ours, n), reference)
    from llamaembed import Llama

    with Llama.from_pretrained() as llama:  # the teacher in llama.cpp, the auto type
        scores["teacher in llama.cpp (auto type)"] = spearman(
            pair_cosines(llama.embed_texts(texts), n), reference
        )
    return scores


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "distill":
            result = worker_distill(rest[0], rest[1], rest[2], int(rest[3]), rest[4])
        else:
            result = worker_encode(rest[0], rest[1], rest[2])
        print(json.dumps(result))
        return

    from llamaembed.hub.registry import resolve_params

    OUT.mkdir(parents=True, exist_ok=True)
    evaluation, corpus_sentences = split_sentences()
    eval_pairs = pairs(evaluation)
    corpus_file = OUT / "corpus.txt"
    corpus_file.write_text("\n".join(corpus_sentences) + "\n")
    short = text_sets()["short"]
    speed_texts = (short * (N_SPEED // len(short) + 1))[:N_SPEED]
    texts_file = OUT / "short.json"
    texts_file.write_text(json.dumps(speed_texts))
    teacher_gguf = resolve_params(None).model_path  # the built-in default, auto type
    folders = {
        "Model2Vec distill (Zipf weights)": OUT / "model2vec",
        "llamaembed (Zipf weights)": OUT / "zipf",
        "llamaembed (corpus weights)": OUT / "corpus",
        "llamaembed (Zipf weights), F32 GGUF teacher": OUT / "zipf-f32",
    }
    teachers = [("model2vec", str(minilm_folder())), ("zipf", str(teacher_gguf)),
                ("corpus", str(teacher_gguf)), ("zipf", str(gguf_paths()["f32"]))]
    distilled = {}
    for (name, folder), (kind, teacher) in zip(folders.items(), teachers, strict=True):
        print(f"distilling: {name}", file=sys.stderr, flush=True)
        distilled[name] = run_worker(
            "distill", kind, str(folder), teacher, str(args.dims), str(corpus_file)
        )
    speed: dict[str, list[dict]] = {"model2vec": [], "llamaembed": []}
    for round_ in range(args.rounds):
        print(f"encoding round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for kind, folder in (("model2vec", folders["Model2Vec distill (Zipf weights)"]),
                             ("llamaembed", folders["llamaembed (Zipf weights)"])):
            speed[kind].append(run_worker("encode", kind, str(folder), str(texts_file)))
    quality = agreement(folders, eval_pairs, Path(teacher_gguf), args.dims)
    med = {k: statistics.median(r["texts_per_s"] for r in v) for k, v in speed.items()}
    rss = {k: statistics.median(r["peak_rss_mb"] for r in v) for k, v in speed.items()}
    lines = [*machine_header(os.cpu_count() or 1), "",
             f"Teacher: all-MiniLM-L6-v2; PCA {args.dims}, SIF 1e-4. Agreement: Spearman of "
             f"static cosines against the teacher's (sentence-transformers, fp32) over "
             f"{len(eval_pairs)} docstring sentence pairs.", "",
             "| distillation | seconds | peak RSS MB | agreement with teacher |",
             "|---|---|---|---|"]
    for name, result in distilled.items():
        lines.append(f"| {name} | {result['seconds']:.1f} | {result['peak_rss_mb']:.0f} | "
                     f"{quality[name]:.4f} |")
    for name in (CONTROL, CONTROL_BF16, "llamaembed StaticModel (its own loader)",
                 "teacher in llama.cpp (auto type)"):
        lines.append(f"| {name} | | | {quality[name]:.4f} |")
    low, high = quality["difference interval"]  # type: ignore[misc]
    difference = quality["llamaembed (Zipf weights)"] - quality["Model2Vec distill (Zipf weights)"]
    lines += ["", f"Agreement, llamaembed (Zipf) minus Model2Vec: {difference:+.4f} "
              f"(95% paired-bootstrap interval {low:+.4f} to {high:+.4f})."]
    m2v = quality["Model2Vec distill (Zipf weights)"]
    gaps = ", ".join(f"{name} {quality[name] - m2v:+.5f}" for name in (
        "llamaembed (Zipf weights)", "llamaembed (Zipf weights), F32 GGUF teacher", CONTROL,
        CONTROL_BF16))
    lines += [f"Minus Model2Vec, to five decimals: {gaps}."]
    row_cos, spread, lowest, highest = quality["numerics spread"]  # type: ignore[misc]
    lines += [f"The two folders' token vectors agree to a median row cosine of {row_cos:.5f} "
              f"(llama.cpp's arithmetic against torch's). Model2Vec's own vectors with random "
              f"noise of that size (20 draws) score {lowest:.4f}–{highest:.4f} "
              f"(standard deviation {spread:.4f})."]
    lines += ["", f"Encoding {N_SPEED:,} short texts (10-20 tokens) in one process, median of "
              f"{args.rounds} interleaved rounds (each the best of 3 calls):", "",
              "| encoder | texts/s | × Model2Vec | peak RSS MB |", "|---|---|---|---|"]
    for kind, label in (("model2vec", "model2vec.StaticModel.encode"),
                        ("llamaembed", "llamaembed.StaticModel.embed_texts")):
        lines.append(f"| {label} | {med[kind]:,.0f} | {med[kind] / med['model2vec']:.2f} | "
                     f"{rss[kind]:.0f} |")
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_results(
            report,
            "python benchmarks/static.py " + " ".join(sys.argv[1:]),
            f"static-{cpu_class()}",
            heading=f"### CPU class `{cpu_class()}` (static tier)",
        )


if __name__ == "__main__":
    main()
