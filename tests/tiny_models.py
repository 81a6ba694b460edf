"""Tiny BERT models with random weights, written as a Hugging Face folder for the converter.

A few hundred WordPiece tokens, two layers, 64 dimensions: fast to convert and to run,
and checked against the numpy reference in tests/reference.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an of to in and or is are was were be been it this that these those with for on "
    "at by from as not no yes can will would should could may might must do does did have has "
    "had i you he she we they me him her us them my your his its our their what which who when "
    "where why how all any each few more most other some such only own same so than too very "
    "just but if then else because while about against between into through during before "
    "after above below up down out off over under again further once here there both rust "
    "python code memory safe safety fast speed search index vector vectors embedding model "
    "models query document documents text texts rank rerank score scores cat cats dog dogs "
    "fish bird tree trees water fire earth air sun moon star stars city river mountain sea "
    "book books read write run runs running walk talk eat drink sleep good bad new old big "
    "small long short high low hot cold red blue green black white day night time year world "
    "hello goodbye thanks please sorry love hate music song food apple banana car train plane "
    "systems programming language languages data database file files computer network"
).split()
PIECES = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + [
    "##s", "##es", "##ed", "##ing", "##ly", "##er", "##est", "##tion", "##ment", "##ness",
]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?;:'\"()-_/@#$%&*+=<>[]{}")


def vocabulary() -> list[str]:
    seen: dict[str, None] = {}
    for token in SPECIAL + CHARS + WORDS + PIECES:
        seen.setdefault(token, None)
    return list(seen)


def _write_tokenizer(folder: Path, vocab: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = {t: i for i, t in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"})
    )


def encoder_layers(normal, prefix: str, layers: int, hidden: int, intermediate: int) -> dict:  # type: ignore[no-untyped-def]
    """Return random weights of BERT-style encoder layers (shared by BERT and XLM-R)."""
    w: dict[str, np.ndarray] = {}
    for i in range(layers):
        p = f"{prefix}encoder.layer.{i}."
        for name, shape in (
            ("attention.self.query", (hidden, hidden)),
            ("attention.self.key", (hidden, hidden)),
            ("attention.self.value", (hidden, hidden)),
            ("attention.output.dense", (hidden, hidden)),
            ("intermediate.dense", (intermediate, hidden)),
            ("output.dense", (hidden, intermediate)),
        ):
            w[p + name + ".weight"] = normal(*shape, scale=0.15)
            w[p + name + ".bias"] = normal(shape[0], scale=0.05)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"] = 1 + normal(hidden, scale=0.05)
            w[p + name + ".bias"] = normal(hidden, scale=0.05)
    return w


def build_tiny_bert(
    folder: Path,
    *,
    classifier: bool = False,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate: int = 128,
    max_positions: int = 128,
    seed: int = 0,
    pooling: str = "mean",
) -> Path:
    """Write a random BERT (or BERT cross-encoder) as a Hugging Face folder; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = vocabulary()

    def normal(*shape: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    prefix = "bert." if classifier else ""
    w: dict[str, np.ndarray] = {
        f"{prefix}embeddings.word_embeddings.weight": normal(len(vocab), hidden, scale=0.5),
        f"{prefix}embeddings.position_embeddings.weight": normal(max_positions, hidden, scale=0.2),
        f"{prefix}embeddings.token_type_embeddings.weight": normal(2, hidden, scale=0.2),
        f"{prefix}embeddings.LayerNorm.weight": 1 + normal(hidden, scale=0.05),
        f"{prefix}embeddings.LayerNorm.bias": normal(hidden, scale=0.05),
        f"{prefix}embeddings.position_ids": np.arange(max_positions, dtype=np.int64)[None],
    }
    w.update(encoder_layers(normal, prefix, layers, hidden, intermediate))
    config = {
        "architectures": ["BertForSequenceClassification" if classifier else "BertModel"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 2,
        "vocab_size": len(vocab),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute",
    }
    if classifier:
        w["bert.pooler.dense.weight"] = normal(hidden, hidden, scale=0.3)
        w["bert.pooler.dense.bias"] = normal(hidden, scale=0.1)
        w["classifier.weight"] = normal(1, hidden, scale=0.1)
        w["classifier.bias"] = normal(1, scale=0.1)
        config["id2label"] = {"0": "LABEL_0"}
        config["label2id"] = {"LABEL_0": 0}
    else:
        (folder / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"},
        ]))
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
        }))
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    save_file(w, str(folder / "model.safetensors"))
    _write_tokenizer(folder, vocab)
    return folder
