"""Tiny XLM-RoBERTa models with random weights and a SentencePiece Unigram vocabulary.

The vocabulary is trained here, offline, by the sentencepiece package on a few thousand
varied sentences; the folder holds what a Hugging Face XLM-RoBERTa checkpoint holds
(``sentencepiece.bpe.model``, a Unigram ``tokenizer.json`` built with the tokenizers
library the way transformers builds it, configs, safetensors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from texts import HARD_CASES, stdlib_sentences
from tiny_models import encoder_layers

PAD_ID = 1


def train_sentencepiece(folder: Path, vocab_size: int = 600, model_type: str = "unigram") -> Path:
    """Train a SentencePiece model on varied text; return the .model path."""
    import sentencepiece as spm

    corpus = folder / "corpus.txt"
    lines = [t for t in HARD_CASES if t.strip()] * 3 + stdlib_sentences(3000)
    corpus.write_text("\n".join(line.replace("\n", " ") for line in lines), encoding="utf-8")
    prefix = folder / f"spm-{model_type}"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        byte_fallback=False,
        split_by_whitespace=True,  # "▁" only as a piece's first character
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def hf_ids(processor, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    """Return Hugging Face's XLM-RoBERTa ids of a text from SentencePiece's own ids."""
    pieces = [3 if i == 0 else i + 1 for i in processor.encode(text)]  # fairseq offset
    return [0, *pieces, 2]


def _write_tokenizer_json(folder: Path, model_file: Path) -> None:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    processor = spm.SentencePieceProcessor(model_file=str(model_file))
    n = processor.get_piece_size()
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(processor.id_to_piece(i), processor.get_score(i)) for i in range(3, n)]
    vocab.append(("<mask>", 0.0))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    proto = pb.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0 </s>:0",
        pair="<s>:0 $A:0 </s>:0 </s>:0 $B:0 </s>:0",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    from tokenizers import AddedToken

    tokenizer.add_special_tokens(
        [AddedToken(t, special=True) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    specials = {
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {**specials, "clean_up_tokenization_spaces": True,
         "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 128}
    ))
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))


def build_tiny_xlmr(
    folder: Path,
    model_file: Path,
    *,
    classifier: bool = False,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate: int = 128,
    context: int = 128,
    seed: int = 0,
) -> Path:
    """Write a random XLM-RoBERTa encoder (or cross-encoder) folder; return it."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sentencepiece.bpe.model").write_bytes(model_file.read_bytes())
    _write_tokenizer_json(folder, model_file)
    n_vocab = spm.SentencePieceProcessor(model_file=str(model_file)).get_piece_size() + 2
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    prefix = "roberta." if classifier else ""
    positions = context + PAD_ID + 1
    w: dict[str, np.ndarray] = {
        f"{prefix}embeddings.word_embeddings.weight": normal(n_vocab, hidden, scale=0.5),
        f"{prefix}embeddings.position_embeddings.weight": normal(positions, hidden, scale=0.2),
        f"{prefix}embeddings.token_type_embeddings.weight": normal(1, hidden, scale=0.2),
        f"{prefix}embeddings.LayerNorm.weight": 1 + normal(hidden, scale=0.05),
        f"{prefix}embeddings.LayerNorm.bias": normal(hidden, scale=0.05),
    }
    w.update(encoder_layers(normal, prefix, layers, hidden, intermediate))
    config = {
        "architectures": [
            "XLMRobertaForSequenceClassification" if classifier else "XLMRobertaModel"
        ],
        "model_type": "xlm-roberta",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": positions,
        "type_vocab_size": 1,
        "vocab_size": n_vocab,
        "pad_token_id": PAD_ID,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "position_embedding_type": "absolute",
    }
    if classifier:
        w["classifier.dense.weight"] = normal(hidden, hidden, scale=0.3)
        w["classifier.dense.bias"] = normal(hidden, scale=0.1)
        w["classifier.out_proj.weight"] = normal(1, hidden, scale=0.3)
        w["classifier.out_proj.bias"] = normal(1, scale=0.1)
        config["id2label"] = {"0": "LABEL_0"}
        config["label2id"] = {"LABEL_0": 0}
    else:
        w["pooler.dense.weight"] = normal(hidden, hidden)
        w["pooler.dense.bias"] = normal(hidden)
        (folder / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"},
        ]))
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": hidden, "pooling_mode_cls_token": True,
            "pooling_mode_mean_tokens": False,
        }))
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    save_file(w, str(folder / "model.safetensors"))
    return folder


def build_tiny_m3(folder: Path, model_file: Path, *, hidden: int = 64, seed: int = 5) -> Path:
    """Write a random bge-m3-shaped folder: an XLM-RoBERTa encoder with CLS pooling plus
    ``sparse_linear.pt`` (hidden → 1) and ``colbert_linear.pt`` (hidden → hidden) saved by
    ``torch.save``, as BAAI ships them; return it."""
    import torch

    build_tiny_xlmr(folder, model_file, seed=seed, hidden=hidden)
    torch.manual_seed(seed)
    torch.save(torch.nn.Linear(hidden, 1).state_dict(), folder / "sparse_linear.pt")
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), folder / "colbert_linear.pt")
    return folder
