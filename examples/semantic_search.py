"""Rank a small corpus by cosine similarity to a query.

    python examples/semantic_search.py "which animal purrs"
"""

from __future__ import annotations

import argparse

from llamaembed import Llama

CORPUS = [
    "Cats purr when they are content and sometimes when they are stressed.",
    "The Rust compiler rejects programs with data races.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The stock market closed higher after the central bank held rates.",
    "A sourdough starter is a culture of wild yeast and bacteria.",
    "Dogs were domesticated from wolves tens of thousands of years ago.",
    "Python's GIL lets only one thread run bytecode at a time.",
    "The Pacific is the largest and deepest of Earth's oceans.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", nargs="?", default="which animal purrs")
    parser.add_argument("--model", default=None, help="GGUF path or catalogue name")
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args()
    with Llama.from_pretrained(args.model) as llama:
        documents = llama.embed_documents(CORPUS)  # unit vectors: dot product = cosine
        query = llama.embed_query(args.query)
    scores = documents @ query
    for rank, i in enumerate(scores.argsort()[::-1][: args.k], start=1):
        print(f"{rank}. {scores[i]:.3f}  {CORPUS[i]}")


if __name__ == "__main__":
    main()
