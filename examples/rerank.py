"""Retrieve candidates with an embedding model, then rerank them with a cross-encoder.

    python examples/rerank.py --reranker bge-reranker-v2-m3 "is coffee bad for sleep"
    python examples/rerank.py --reranker path/to/cross-encoder.gguf "query"

Without --reranker it shows the embedding ranking only (no cross-encoder ships offline).
"""

from __future__ import annotations

import argparse

from llamaembed import Index, Llama

PASSAGES = [
    "Caffeine blocks adenosine receptors and can delay sleep onset for hours.",
    "Coffee beans are the roasted seeds of the Coffea plant.",
    "A consistent bedtime improves sleep quality.",
    "Green tea contains less caffeine than coffee.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "Blue light from screens suppresses melatonin in the evening.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", nargs="?", default="is coffee bad for sleep")
    parser.add_argument("--model", default=None, help="embedding model (GGUF or catalogue)")
    parser.add_argument("--reranker", default=None, help="cross-encoder (GGUF or catalogue)")
    args = parser.parse_args()
    with Llama.from_pretrained(args.model) as embedder:
        index = Index(embedder)
        index.add(PASSAGES)
        print("embedding ranking:")
        for hit in index.search(args.query, 4, hybrid=False):
            print(f"  {hit.score:.4f}  {hit.text}")
        if args.reranker:
            with Llama.from_pretrained(args.reranker) as reranker:
                print("after reranking:")
                for hit in index.search(args.query, 4, rerank_with=reranker):
                    print(f"  {hit.score:+.3f}  {hit.text}")


if __name__ == "__main__":
    main()
