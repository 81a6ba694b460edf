"""Two stages: index fast with a static model, then rerank the few candidates accurately.

    python examples/static_ingest.py "how do I compress a file"
    python examples/static_ingest.py --reranker bge-reranker-v2-m3 "query"

The static model is distilled once from the embedding model (--teacher, default the
built-in all-MiniLM-L6-v2) and kept in llamaembed's cache. The corpus is the first
paragraph of every documented function and class in Python's standard library. The
second stage rescores the static model's top candidates with a cross-encoder
(--reranker) or, without one, with the teacher itself.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import time
from pathlib import Path

import numpy as np

from llamaembed import Index, Llama, StaticModel, distill
from llamaembed._files import cache_root


def stdlib_paragraphs() -> list[str]:
    seen: dict[str, None] = {}
    for info in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        name = info.name
        if name not in sys.stdlib_module_names or name.startswith("_") or name in (
            "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        for attribute, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc and not attribute.startswith("_"):
                first = " ".join(doc.split("\n\n")[0].split())
                if len(first) >= 30:
                    seen.setdefault(f"{name}.{attribute}: {first}", None)
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", nargs="?", default="how do I compress a file")
    parser.add_argument("--teacher", default=None, help="embedding model (GGUF or catalogue)")
    parser.add_argument("--static", default=None, help="a static-model folder (else distil)")
    parser.add_argument("--reranker", default=None, help="cross-encoder (GGUF or catalogue)")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    folder = Path(args.static) if args.static else cache_root() / "static" / (
        Path(args.teacher).stem if args.teacher else "default")
    if not (folder / "model.safetensors").exists():
        started = time.perf_counter()
        distill(args.teacher or "all-MiniLM-L6-v2", folder)
        print(f"distilled {folder} in {time.perf_counter() - started:.0f} s")

    corpus = stdlib_paragraphs()
    static = StaticModel(folder)
    started = time.perf_counter()
    index = Index(static)
    index.add(corpus)
    seconds = time.perf_counter() - started
    print(f"indexed {len(corpus)} passages in {seconds:.2f} s "
          f"({len(corpus) / seconds:,.0f} passages/s)")

    candidates = index.search(args.query, 30, hybrid=False)
    print("static model, top candidates:")
    for hit in candidates[: args.k]:
        print(f"  {hit.score:.4f}  {hit.text[:100]}")

    texts = [hit.text for hit in candidates]
    if args.reranker:
        with Llama.from_pretrained(args.reranker) as reranker:
            scores = reranker.rerank(args.query, texts)
        print("after reranking with the cross-encoder:")
    else:
        with Llama.from_pretrained(args.teacher) as teacher:
            query = teacher.embed_query(args.query)
            scores = teacher.embed_documents(texts) @ query
        print("after rescoring with the teacher:")
    for i in np.argsort(-scores)[: args.k]:
        print(f"  {scores[i]:.4f}  {texts[i][:100]}")


if __name__ == "__main__":
    main()
