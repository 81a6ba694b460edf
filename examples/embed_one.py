"""Print the embedding of one text (default model: all-MiniLM-L6-v2, built offline).

    python examples/embed_one.py "Rust is memory-safe."
    python examples/embed_one.py --model path/to/model.gguf "some text"
"""

from __future__ import annotations

import argparse

from llamaembed import Llama


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", default="Rust is a memory-safe systems language.")
    parser.add_argument("--model", default=None, help="GGUF path or catalogue name")
    args = parser.parse_args()
    with Llama.from_pretrained(args.model) as llama:
        vector = llama.embed(args.text)
    print(f"model: {llama.model_path.name}  dimensions: {vector.shape[0]}  "
          f"norm: {float((vector ** 2).sum()) ** 0.5:.4f}")
    print("first values:", " ".join(f"{x:+.4f}" for x in vector[:8]))


if __name__ == "__main__":
    main()
