"""The child process of the extra-buffers probe: a tiny Q8_0 BERT embeds a few texts.

``python -m llamaembed.engine.probe_child FOLDER`` builds the model in FOLDER once (random
weights from a fixed seed, converted and quantised by llamaembed itself), embeds
:data:`PROBE_TEXTS` and writes the vectors to standard output as ``.npy``. The parent
(``engine.probe``) runs it twice, with ``LLAMAEMBED_CPU_EXTRA_BUFFERS`` 0 and 1, so the two
runs differ only in where llama.cpp keeps the quantised weights. Its sizes are multiples
of 32, so that ggml's AMX kernels take its matrix products.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["PROBE_TEXTS", "build_probe_model", "main"]

_WORDS = (  # noqa: SIM905  (a word list reads better as one string)
    "the a of to in and is it for on with as at by from this that model text vector "
    "search index memory fast safe rust code cat dog tree water fire city river sea"
).split()
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_HIDDEN, _LAYERS, _HEADS, _FFN = 64, 2, 2, 256
PROBE_TEXTS = [
    "the cat is in the tree",
    "rust code is fast and safe",
    "a river to the sea",
    "search the index of vectors",
    "fire and water",
    "this model is a text model for search",
    "dog",
    "the city by the river with the tree and the cat and the dog",
]


def _weights(vocab_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261129)

    def normal(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": normal(vocab_size, _HIDDEN, scale=0.5),
        "embeddings.position_embeddings.weight": normal(64, _HIDDEN, scale=0.1),
        "embeddings.token_type_embeddings.weight": normal(2, _HIDDEN, scale=0.1),
        "embeddings.LayerNorm.weight": np.ones(_HIDDEN, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(_HIDDEN, np.float32),
    }
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."
        for name, shape in (
            ("attention.self.query", (_HIDDEN, _HIDDEN)),
            ("attention.self.key", (_HIDDEN, _HIDDEN)),
            ("attention.self.value", (_HIDDEN, _HIDDEN)),
            ("attention.output.dense", (_HIDDEN, _HIDDEN)),
            ("intermediate.dense", (_FFN, _HIDDEN)),
            ("output.dense", (_HIDDEN, _FFN)),
        ):
            w[p + name + ".weight"] = normal(*shape, scale=0.15)
            w[p + name + ".bias"] = normal(shape[0], scale=0.05)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"] = np.ones(_HIDDEN, np.float32)
            w[p + name + ".bias"] = np.zeros(_HIDDEN, np.float32)
    return w


def build_probe_model(folder: Path) -> Path:
    """Return the probe's Q8_0 GGUF in ``folder``, building it there first if missing."""
    from safetensors.numpy import save_file

    from ..conversion import convert
    from ..conversion.quantize import quantize

    target = folder / "probe-q8_0.gguf"
    if target.exists():
        return target
    source = folder / "hf"
    source.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = list(dict.fromkeys(_SPECIAL + letters + _WORDS + [f"##{c}" for c in letters]))
    (source / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": _HIDDEN,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
        "intermediate_size": _FFN,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "vocab_size": len(vocab),
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    }
    (source / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (source / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    save_file(_weights(len(vocab)), str(source / "model.safetensors"))
    f32 = convert(source, folder / "probe-f32.gguf", outtype="f32", pooling="mean")
    return quantize(f32, target, "q8_0", n_threads=1)


def main(argv: list[str] | None = None) -> int:
    """Embed the probe texts with the probe model and write the vectors to stdout."""
    from .llama import Llama

    args = sys.argv[1:] if argv is None else argv
    path = build_probe_model(Path(args[0]))
    with Llama(path, n_threads=1) as model:
        vectors = model.embed_texts(PROBE_TEXTS)
    np.save(sys.stdout.buffer, np.asarray(vectors, dtype=np.float32))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
