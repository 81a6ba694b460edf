"""Hugging Face safetensors → GGUF for XLM-RoBERTa encoders and cross-encoders, no torch.

bge-m3, bge-reranker-base and bge-reranker-v2-m3 are XLM-RoBERTa. llama.cpp runs them
with its ``bert`` graph and its ``t5`` (SentencePiece Unigram) tokenizer; this writes
what llama.cpp's own converter (``conversion/bert.py``, ``XLMRobertaModel``) writes:

- the position table without its first ``pad_token_id + 1`` rows (RoBERTa counts
  positions from there), and a context length shortened to match;
- ``roberta.`` dropped, the pooler dropped, the head's ``classifier.dense`` as ``cls`` and
  ``classifier.out_proj`` as ``cls.output``;
- the vocabulary from ``sentencepiece.bpe.model`` (read by :mod:`.sentencepiece`), with
  ids re-ordered as Hugging Face orders them (``<s> <pad> </s> <unk>``, then the pieces
  shifted by one), or from ``tokenizer.json``'s Unigram vocabulary when there is no
  ``.model``; the normaliser's settings and the special tokens as ``gguf.SpecialVocab``
  reads them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConversionError
from ..params import Pooling
from .bert import (
    _tensors_to_write,
    check_config_fits_weights,
    check_encoder_config,
    choose_pooling,
    tensors_shape0,
    write_gguf,
    write_model_metadata,
)
from .hf_folder import load_tensors, read_json
from .sentencepiece import CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED, read_model

__all__ = ["XLM_ROBERTA_ARCHITECTURES", "convert_xlm_roberta"]

XLM_ROBERTA_ARCHITECTURES = ("XLMRobertaModel", "XLMRobertaForSequenceClassification")
SENTENCEPIECE_FILE = "sentencepiece.bpe.model"


@dataclass(frozen=True)
class _Tokenizer:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    add_space_prefix: bool
    remove_extra_whitespaces: bool
    precompiled_charsmap: bytes


def _bert_name(name: str) -> str | None:
    """Return the BERT-style name of an XLM-RoBERTa tensor (None: not used by llama.cpp)."""
    if name.startswith("roberta."):
        name = name[len("roberta.") :]
    if name.startswith(("pooler.", "lm_head.")):
        return None
    # The classification head maps onto BERT's pooler + classifier, which the BERT
    # mapping turns into llama.cpp's cls / cls.output.
    if name.startswith("classifier.dense."):
        return "pooler.dense." + name[len("classifier.dense.") :]
    if name.startswith("classifier.out_proj."):
        return "classifier." + name[len("classifier.out_proj.") :]
    return name


def _placeholders(n: int) -> tuple[list[str], list[float], list[int]]:
    # As llama.cpp's converter: ids without a piece are unused padding entries.
    return [f"[PAD{i}]" for i in range(n)], [-10000.0] * n, [UNUSED] * n


def _from_sentencepiece(path: Path, vocab_size: int) -> _Tokenizer:
    model = read_model(path)
    tokens, scores, types = _placeholders(max(vocab_size, len(model.pieces)))
    for i, (piece, score, kind) in enumerate(
        zip(model.pieces, model.scores, model.types, strict=True)
    ):
        tokens[i], scores[i], types[i] = piece, score, kind
    # SentencePiece numbers <unk> <s> </s> 0, 1, 2; Hugging Face (fairseq) puts <s> <pad>
    # </s> <unk> first and every other piece one id later.
    return _Tokenizer(
        tokens=["<s>", "<pad>", "</s>", "<unk>", *tokens[3:-1]],
        scores=[0.0, 0.0, 0.0, 0.0, *scores[3:-1]],
        types=[CONTROL, CONTROL, CONTROL, UNKNOWN, *types[3:-1]],
        add_space_prefix=model.add_dummy_prefix,
        remove_extra_whitespaces=model.remove_extra_whitespaces,
        precompiled_charsmap=model.precompiled_charsmap,
    )


def _parts(component: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """Return a normaliser or pre-tokenizer and, for a Sequence, its members."""
    if not component:
        return []
    return [component, *(component.get(key) or [])]


def _from_tokenizer_json(path: Path, folder: Path, vocab_size: int) -> _Tokenizer:
    data = read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "Unigram":
        raise ConversionError(
            f"{path}: tokenizer type {model.get('type')!r} is not Unigram; an XLM-RoBERTa "
            f"model needs {SENTENCEPIECE_FILE} or a Unigram tokenizer.json"
        )
    vocab = model.get("vocab")
    if not isinstance(vocab, list) or not vocab:
        raise ConversionError(f"{path}: the Unigram model has no vocabulary")
    tokens, scores, types = _placeholders(max(vocab_size, len(vocab)))
    try:
        for i, (piece, score) in enumerate(vocab):
            tokens[i], scores[i], types[i] = str(piece), float(score), NORMAL
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"{path}: a vocabulary entry is not [piece, score]") from exc
    added = data.get("added_tokens") or []
    unk_id = 3 if model.get("unk_id") is None else int(model["unk_id"])
    for token in added:
        index = int(token["id"])
        if 0 <= index < len(tokens):
            tokens[index] = str(token["content"])
            if token.get("special"):
                types[index] = CONTROL
            elif index != unk_id:
                types[index] = USER_DEFINED
    if 0 <= unk_id < len(types):
        types[unk_id] = UNKNOWN
    charsmap = b""
    for part in _parts(data.get("normalizer"), "normalizers"):
        if part.get("type") == "Precompiled" and part.get("precompiled_charsmap"):
            charsmap = base64.b64decode(part["precompiled_charsmap"])
    add_prefix = False
    for part in _parts(data.get("pre_tokenizer"), "pretokenizers"):
        if part.get("type") == "Metaspace":
            scheme = part.get("prepend_scheme")
            add_prefix = scheme in ("always", "first") or bool(part.get("add_prefix_space"))
    settings_file = folder / "tokenizer_config.json"
    settings = read_json(settings_file) if settings_file.exists() else {}
    return _Tokenizer(
        tokens=tokens,
        scores=scores,
        types=types,
        add_space_prefix=add_prefix,
        # llama.cpp's converter takes this from transformers' clean_up_tokenization_spaces.
        remove_extra_whitespaces=bool(settings.get("clean_up_tokenization_spaces", True)),
        precompiled_charsmap=charsmap,
    )


def read_tokenizer(folder: Path, vocab_size: int) -> _Tokenizer:
    """Return the GGUF vocabulary of an XLM-RoBERTa folder (.model first, as llama.cpp)."""
    model_file = folder / SENTENCEPIECE_FILE
    if model_file.is_file():
        return _from_sentencepiece(model_file, vocab_size)
    json_file = folder / "tokenizer.json"
    if json_file.is_file():
        return _from_tokenizer_json(json_file, folder, vocab_size)
    raise ConversionError(f"no tokenizer in {folder} (need {SENTENCEPIECE_FILE} or tokenizer.json)")


def _write_tokenizer(writer: Any, tokenizer: _Tokenizer, folder: Path, type_count: int) -> None:
    import gguf

    writer.add_tokenizer_model("t5")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokenizer.tokens)
    writer.add_token_scores(tokenizer.scores)
    writer.add_token_types(tokenizer.types)
    writer.add_add_space_prefix(tokenizer.add_space_prefix)
    writer.add_token_type_count(type_count)
    writer.add_remove_extra_whitespaces(tokenizer.remove_extra_whitespaces)
    if tokenizer.precompiled_charsmap:
        writer.add_precompiled_charsmap(tokenizer.precompiled_charsmap)
    # bos/eos/unk/sep/pad/mask ids and add_bos/add_eos/add_sep, read as llama.cpp's
    # converter reads them (RobertaProcessing: <s> A </s></s> B </s>).
    special = gguf.SpecialVocab(folder, n_vocab=len(tokenizer.tokens))
    special.add_to_gguf(writer, quiet=True)


def convert_xlm_roberta(
    folder: Path,
    config: dict[str, Any],
    arch: str,
    target: Path,
    *,
    outtype: str,
    pooling: Pooling | str | None,
    name: str | None,
) -> Path:
    """Convert an XLM-RoBERTa encoder or cross-encoder folder to ``target``; return it."""
    check_encoder_config(config)
    classifier = arch == "XLMRobertaForSequenceClassification"
    chosen = choose_pooling(folder, classifier, pooling)
    pad_id = config.get("pad_token_id", 1)
    offset = int(pad_id) + 1 if pad_id is not None else 0
    context = int(config["max_position_embeddings"]) - offset
    if context < 1:
        raise ConversionError(f"max_position_embeddings is too small for pad_token_id {pad_id}")
    tokenizer = read_tokenizer(folder, int(config.get("vocab_size", 0)))
    renamed: dict[str, npt.NDArray[Any]] = {}
    for hf_name, array in load_tensors(folder).items():
        bert_name = _bert_name(hf_name)
        if bert_name is not None:
            renamed[bert_name] = array
    planned = []
    for gguf_name, array in _tensors_to_write(
        renamed, classifier, int(config["num_hidden_layers"])
    ):
        if gguf_name == "position_embd.weight":
            array = np.ascontiguousarray(array[offset:])
        planned.append((gguf_name, array))
    check_config_fits_weights(config, planned, context)
    n_rows = tensors_shape0(planned, "token_embd.weight")
    if n_rows != len(tokenizer.tokens):
        raise ConversionError(
            f"the vocabulary has {len(tokenizer.tokens)} tokens but the embedding matrix "
            f"{n_rows} rows"
        )
    type_count = int(config.get("type_vocab_size", 1))

    def write_metadata(writer: Any) -> None:
        write_model_metadata(
            writer, config, name or folder.name, context, chosen, outtype, classifier
        )
        _write_tokenizer(writer, tokenizer, folder, type_count)

    return write_gguf(target, write_metadata, planned, outtype)
