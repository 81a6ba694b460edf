"""Hugging Face safetensors → GGUF for BERT encoders and cross-encoders, without torch.

Writes what llama.cpp's own converter writes for these models (architecture ``bert``,
WordPiece vocabulary in phantom-space form, pooling type, norms in F32), and also keeps
what it drops for cross-encoders: ``bert.pooler.dense`` becomes llama.cpp's ``cls``
tensor and ``classifier`` its ``cls.output``, so llama.cpp's rank head computes Hugging
Face's pooler + tanh + classifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._files import atomic_path, output_problem
from ..errors import ConversionError
from ..params import Pooling
from .hf_folder import load_tensors, read_json

__all__ = ["BERT_ARCHITECTURES", "CONVERTER_VERSION", "OUTTYPES", "convert_bert"]

CONVERTER_VERSION = "1"
BERT_ARCHITECTURES = ("BertModel", "BertForSequenceClassification")
OUTTYPES = ("f32", "f16", "q8_0")

# HF name (after dropping the "bert." prefix) → GGUF name; {i} is the layer number.
_LAYER_MAP = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_GLOBAL_MAP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
}
_CLASSIFIER_MAP = {"pooler.dense": "cls", "classifier": "cls.output"}
_SKIPPED = re.compile(
    r"^(embeddings\.position_ids|cls\.predictions\..*|cls\.seq_relationship\..*)$"
)
_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


@dataclass(frozen=True)
class _Vocab:
    tokens: list[str]
    special: set[str]
    lowercase: bool
    strip_accents: bool
    ids: dict[str, int]


def _read_vocab(folder: Path) -> _Vocab:
    config = (
        read_json(folder / "tokenizer_config.json")
        if (folder / "tokenizer_config.json").exists()
        else {}
    )
    tokenizer_json = folder / "tokenizer.json"
    special: set[str] = set()
    lowercase = bool(config.get("do_lower_case", False))
    strip_accents: bool | None = config.get("strip_accents")
    ids: dict[str, int] = {}
    if tokenizer_json.exists():
        data = read_json(tokenizer_json)
        model = data.get("model") or {}
        if model.get("type") != "WordPiece":
            raise ConversionError(
                f"{tokenizer_json}: tokenizer type {model.get('type')!r} is not WordPiece; "
                "only BERT WordPiece vocabularies are supported"
            )
        ids = dict(model["vocab"])
        for added in data.get("added_tokens") or []:
            ids.setdefault(added["content"], added["id"])
            if added.get("special"):
                special.add(added["content"])
        normalizer = data.get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            lowercase = bool(normalizer.get("lowercase", lowercase))
            strip_accents = normalizer.get("strip_accents", strip_accents)
    elif (folder / "vocab.txt").exists():
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        ids = {token: i for i, token in enumerate(lines)}
    else:
        raise ConversionError(f"no tokenizer in {folder} (need tokenizer.json or vocab.txt)")
    for key in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            special.add(value)
    special |= {t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in ids}
    size = max(ids.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    for token, index in ids.items():
        tokens[index] = token
    return _Vocab(
        tokens=tokens,
        special=special,
        lowercase=lowercase,
        strip_accents=lowercase if strip_accents is None else bool(strip_accents),
        ids=ids,
    )


def _sentence_transformers_pooling(folder: Path) -> Pooling | None:
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {modules_file}: {exc}") from exc
    for module in modules:
        if str(module.get("type", "")).endswith("Pooling"):
            config = read_json(folder / module.get("path", "") / "config.json")
            if config.get("pooling_mode_cls_token"):
                return Pooling.CLS
            if config.get("pooling_mode_mean_tokens"):
                return Pooling.MEAN
            if config.get("pooling_mode_lasttoken"):
                return Pooling.LAST
            modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
            raise ConversionError(f"unsupported sentence-transformers pooling {modes}")
    return None


def _map_tensor_name(name: str, classifier: bool) -> str | None:
    """Return the GGUF name of an HF tensor, None to drop it; raise for unknown names."""
    if name.startswith("bert."):
        name = name[5:]
    name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
    if _SKIPPED.match(name):
        return None
    stem, _, kind = name.rpartition(".")
    if kind not in ("weight", "bias"):
        raise ConversionError(f"unexpected tensor {name!r}")
    if stem in _GLOBAL_MAP:
        return f"{_GLOBAL_MAP[stem]}.{kind}"
    if stem in _CLASSIFIER_MAP:
        return f"{_CLASSIFIER_MAP[stem]}.{kind}" if classifier else None
    match = _LAYER_RE.match(name)
    if match and match.group(2) in _LAYER_MAP:
        return f"blk.{match.group(1)}.{_LAYER_MAP[match.group(2)]}.{kind}"
    raise ConversionError(f"unexpected tensor {name!r} for a BERT model")


def _phantom(token: str, special: set[str]) -> str:
    if token in special:
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


# llama.cpp adds a row of token_types to F32 activations with ggml_add, which needs F32.
_KEEP_F32 = {"token_types.weight"}


def _encode_tensor(
    name: str, array: npt.NDArray[Any], outtype: str
) -> tuple[npt.NDArray[Any], Any]:
    import gguf

    data = np.ascontiguousarray(array.astype(np.float32))
    if data.ndim == 1 or outtype == "f32" or name in _KEEP_F32:
        return data, gguf.GGMLQuantizationType.F32
    if outtype == "q8_0" and data.shape[-1] % 32 == 0:
        quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        return quantized, gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def _tensors_to_write(
    tensors: dict[str, npt.NDArray[Any]], classifier: bool, n_layers: int
) -> Iterator[tuple[str, npt.NDArray[Any]]]:
    seen: set[str] = set()
    for hf_name in sorted(tensors):
        gguf_name = _map_tensor_name(hf_name, classifier)
        if gguf_name is None:
            continue
        if gguf_name in seen:
            raise ConversionError(f"two tensors map to {gguf_name}")
        seen.add(gguf_name)
        yield gguf_name, tensors[hf_name]
    required = ["token_embd.weight", "position_embd.weight", "token_embd_norm.weight"]
    for i in range(n_layers):
        required += [f"blk.{i}.{part}.weight" for part in _LAYER_MAP.values()]
    if classifier:
        required.append("cls.output.weight")
    missing = [name for name in required if name not in seen]
    if missing:
        raise ConversionError(f"the weights lack tensors llama.cpp needs: {missing[:5]}")


def check_outtype(outtype: str) -> None:
    """Raise ConversionError for an output type the converter does not write."""
    if outtype not in OUTTYPES:
        raise ConversionError(
            f"unknown outtype {outtype!r}; choose one of: {', '.join(OUTTYPES)}, bf16, auto"
        )


def check_encoder_config(config: dict[str, Any]) -> None:
    """Raise ConversionError for BERT-family settings llama.cpp's graph does not compute."""
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError("only absolute position embeddings are supported")
    if str(config.get("hidden_act", "gelu")) not in ("gelu", "gelu_new", "gelu_python"):
        raise ConversionError(f"unsupported activation {config.get('hidden_act')!r} (need gelu)")


def choose_pooling(folder: Path, classifier: bool, pooling: Pooling | str | None) -> Pooling:
    """Return the pooling to record: rank for a classifier, else asked, else the ST config."""
    if classifier:
        if pooling is not None and Pooling.parse(pooling) is not Pooling.RANK:
            raise ConversionError("a sequence-classification model always uses rank pooling")
        return Pooling.RANK
    if pooling is not None:
        return Pooling.parse(pooling)
    return _sentence_transformers_pooling(folder) or Pooling.CLS


def write_gguf(
    target: Path,
    write_metadata: Any,
    planned: list[tuple[str, npt.NDArray[Any]]],
    outtype: str,
) -> Path:
    """Write a GGUF atomically: metadata through ``write_metadata(writer)``, then tensors."""
    import gguf

    problem = output_problem(target)
    if problem:
        raise ConversionError(problem)
    try:
        with atomic_path(target) as tmp:
            writer = gguf.GGUFWriter(tmp, "bert")
            write_metadata(writer)
            for gguf_name, array in planned:
                data, qtype = _encode_tensor(gguf_name, array, outtype)
                writer.add_tensor(gguf_name, data, raw_dtype=qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
    except OSError as exc:
        raise ConversionError(f"cannot write {target}: {exc}") from exc
    return target


def convert_bert(
    folder: Path,
    config: dict[str, Any],
    arch: str,
    target: Path,
    *,
    outtype: str,
    pooling: Pooling | str | None,
    name: str | None,
) -> Path:
    """Convert a BERT encoder or cross-encoder folder to ``target``; return it."""
    check_encoder_config(config)
    classifier = arch == "BertForSequenceClassification"
    chosen = choose_pooling(folder, classifier, pooling)
    vocab = _read_vocab(folder)
    tensors = load_tensors(folder)
    n_layers = int(config["num_hidden_layers"])
    planned = list(_tensors_to_write(tensors, classifier, n_layers))
    check_config_fits_weights(config, planned, int(config["max_position_embeddings"]))
    n_vocab_weights = tensors_shape0(planned, "token_embd.weight")
    if n_vocab_weights != len(vocab.tokens):
        # Pad the vocabulary the way llama.cpp's converter does.
        if n_vocab_weights > len(vocab.tokens):
            vocab.tokens.extend(f"[PAD{i}]" for i in range(len(vocab.tokens), n_vocab_weights))
        else:
            raise ConversionError(
                f"the vocabulary has {len(vocab.tokens)} tokens but the embedding matrix "
                f"only {n_vocab_weights} rows"
            )
    return write_gguf(
        target,
        lambda writer: _write_metadata(
            writer, config, folder, chosen, vocab, outtype, name, classifier
        ),
        planned,
        outtype,
    )


def check_config_fits_weights(
    config: dict[str, Any], planned: list[tuple[str, npt.NDArray[Any]]], context_length: int
) -> None:
    """Raise ConversionError when config.json disagrees with the weights it describes.

    The GGUF's metadata comes from the config and its tensors from the weights; where
    they disagree llama.cpp refuses the file at load or, for a negative layer-norm
    epsilon, aborts the process. Refuse such a folder here, naming the setting.
    """
    shapes = {name: array.shape for name, array in planned}

    def setting(key: str, default: Any = None) -> Any:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConversionError(f"config.json: {key} = {value!r} is not a number")
        return value

    width = setting("hidden_size")
    if width != shapes["token_embd.weight"][1]:
        raise ConversionError(
            f"config.json: hidden_size = {width} but the embeddings are "
            f"{shapes['token_embd.weight'][1]} wide"
        )
    heads = setting("num_attention_heads")
    if heads < 1 or width % heads:
        raise ConversionError(
            f"config.json: num_attention_heads = {heads} does not divide hidden_size {width}"
        )
    ffn = setting("intermediate_size")
    if ffn != shapes["blk.0.ffn_up.weight"][0]:
        raise ConversionError(
            f"config.json: intermediate_size = {ffn} but the feed-forward weights are "
            f"{shapes['blk.0.ffn_up.weight'][0]} wide"
        )
    layers = setting("num_hidden_layers")
    extra = [n for n in shapes if n.startswith(f"blk.{layers}.")]
    if extra:
        raise ConversionError(
            f"config.json: num_hidden_layers = {layers} but the weights hold more layers"
        )
    eps = setting("layer_norm_eps", 1e-12)
    if not 0 <= eps < 1:
        raise ConversionError(f"config.json: layer_norm_eps = {eps} is out of range")
    types = setting("type_vocab_size", 1)
    rows = shapes.get("token_types.weight", (1,))[0]
    if types < 1 or types != rows:
        raise ConversionError(
            f"config.json: type_vocab_size = {types} but the weights hold {rows} token types"
        )
    positions = shapes["position_embd.weight"][0]
    if not 1 <= context_length <= positions:
        raise ConversionError(
            f"config.json: a context of {context_length} tokens does not fit the "
            f"{positions} position embeddings"
        )


def tensors_shape0(planned: list[tuple[str, npt.NDArray[Any]]], name: str) -> int:
    """Return the first dimension of a planned tensor."""
    for gguf_name, array in planned:
        if gguf_name == name:
            return int(array.shape[0])
    raise ConversionError(f"missing tensor {name}")


def write_model_metadata(
    writer: Any,
    config: dict[str, Any],
    name: str,
    context_length: int,
    pooling: Pooling,
    outtype: str,
    classifier: bool,
) -> None:
    """Write the architecture keys llama.cpp's BERT graph reads."""
    import gguf

    file_types = {"f32": 0, "f16": 1, "q8_0": 7}
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType(pooling.llama_code))
    writer.add_file_type(file_types[outtype])
    writer.add_string("llamaembed.converter_version", CONVERTER_VERSION)
    if classifier:
        id2label = config.get("id2label") or {"0": "LABEL_0"}
        labels = [str(v) for _, v in sorted(id2label.items(), key=lambda kv: int(kv[0]))]
        writer.add_classifier_output_labels(labels)


def _write_metadata(
    writer: Any,
    config: dict[str, Any],
    folder: Path,
    pooling: Pooling,
    vocab: _Vocab,
    outtype: str,
    name: str | None,
    classifier: bool,
) -> None:
    import gguf

    write_model_metadata(
        writer,
        config,
        name or folder.name,
        int(config["max_position_embeddings"]),
        pooling,
        outtype,
        classifier,
    )
    tokens = [_phantom(t, vocab.special) for t in vocab.tokens]
    token_types = [
        gguf.TokenType.CONTROL
        if t in vocab.special
        else (
            gguf.TokenType.UNUSED
            if re.fullmatch(r"\[PAD\d+\]", t) and t not in vocab.ids
            else gguf.TokenType.NORMAL
        )
        for t in vocab.tokens
    ]
    writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("jina-v2-en")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)

    def token_id(*names: str) -> int | None:
        for token in names:
            if token in vocab.ids:
                return vocab.ids[token]
        return None

    cls_id = token_id("[CLS]")
    sep_id = token_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ConversionError("the vocabulary lacks [CLS] or [SEP]")
    writer.add_bos_token_id(cls_id)
    writer.add_eos_token_id(sep_id)
    writer.add_sep_token_id(sep_id)
    for setter, token in (
        (writer.add_unk_token_id, "[UNK]"),
        (writer.add_pad_token_id, "[PAD]"),
        (writer.add_mask_token_id, "[MASK]"),
    ):
        found = token_id(token)
        if found is not None:
            setter(found)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    writer.add_add_sep_token(False)
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", vocab.lowercase)
    writer.add_bool("tokenizer.ggml.normalizer.strip_accents", vocab.strip_accents)
