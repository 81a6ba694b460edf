"""Read a SentencePiece ``.model`` file without the sentencepiece library.

A ``.model`` file is one protobuf ``ModelProto``. The converter needs three of its
fields: the pieces (text, score, type), the trainer's model type (Unigram or not) and the
normaliser's settings (precompiled character map, dummy prefix, whitespace folding).
This module decodes just those from the protobuf wire format and skips everything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConversionError

__all__ = ["PIECE_TYPES", "SentencePieceModel", "read_model"]

# SentencePiece's piece types (the same numbers as gguf.TokenType).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
PIECE_TYPES = {NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE}
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}

# Field numbers in sentencepiece_model.proto.
_MODEL_PIECES, _MODEL_TRAINER, _MODEL_NORMALIZER = 1, 2, 3
_PIECE_TEXT, _PIECE_SCORE, _PIECE_TYPE = 1, 2, 3
_TRAINER_MODEL_TYPE = 3
_NORMALIZER_CHARSMAP, _NORMALIZER_DUMMY_PREFIX, _NORMALIZER_REMOVE_SPACES = 2, 3, 4


@dataclass(frozen=True)
class SentencePieceModel:
    """The parts of a SentencePiece model the GGUF tokenizer needs, in SentencePiece order."""

    pieces: list[str]
    scores: list[float]
    types: list[int]
    model_type: str
    precompiled_charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool


class _Malformed(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _Malformed("a number runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("a number is longer than 10 bytes")


def _fields(data: bytes) -> list[tuple[int, int, object]]:
    """Return (field number, wire type, value) for each field of one message."""
    fields: list[tuple[int, int, object]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        value: object
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            if pos + 8 > len(data):
                raise _Malformed("a 64-bit field runs past the end")
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Malformed("a length-delimited field runs past the end")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            if pos + 4 > len(data):
                raise _Malformed("a 32-bit field runs past the end")
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise _Malformed(f"wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _piece(data: bytes) -> tuple[str, float, int]:
    text, score, kind = None, 0.0, NORMAL
    for number, wire, value in _fields(data):
        if number == _PIECE_TEXT and wire == 2:
            assert isinstance(value, bytes)
            text = value.decode("utf-8")
        elif number == _PIECE_SCORE and wire == 5:
            assert isinstance(value, bytes)
            score = struct.unpack("<f", value)[0]
        elif number == _PIECE_TYPE and wire == 0:
            assert isinstance(value, int)
            kind = value
    if text is None:
        raise _Malformed("a piece without text")
    if kind not in PIECE_TYPES:
        raise _Malformed(f"piece {text!r} has unknown type {kind}")
    return text, score, kind


def read_model(path: str | Path) -> SentencePieceModel:
    """Return the pieces and settings of a SentencePiece Unigram ``.model`` file.

    Raises ConversionError naming the file when it is not a SentencePiece model, is
    truncated, or is a BPE/word/char model rather than Unigram.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    pieces: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    model_type = 1  # proto default: UNIGRAM
    charsmap = b""
    dummy_prefix = remove_spaces = True  # proto defaults
    try:
        for number, wire, value in _fields(data):
            if wire != 2:
                continue
            assert isinstance(value, bytes)
            if number == _MODEL_PIECES:
                text, score, kind = _piece(value)
                pieces.append(text)
                scores.append(score)
                types.append(kind)
            elif number == _MODEL_TRAINER:
                for field, field_wire, field_value in _fields(value):
                    if field == _TRAINER_MODEL_TYPE and field_wire == 0:
                        assert isinstance(field_value, int)
                        model_type = field_value
            elif number == _MODEL_NORMALIZER:
                for field, field_wire, field_value in _fields(value):
                    if field == _NORMALIZER_CHARSMAP and field_wire == 2:
                        assert isinstance(field_value, bytes)
                        charsmap = field_value
                    elif field == _NORMALIZER_DUMMY_PREFIX and field_wire == 0:
                        dummy_prefix = bool(field_value)
                    elif field == _NORMALIZER_REMOVE_SPACES and field_wire == 0:
                        remove_spaces = bool(field_value)
    except (_Malformed, UnicodeDecodeError) as exc:
        raise ConversionError(
            f"{path} is not a readable SentencePiece model (truncated or another format): {exc}"
        ) from exc
    if not pieces:
        raise ConversionError(f"{path} holds no SentencePiece pieces; is it a .model file?")
    kind_name = _MODEL_TYPES.get(model_type, f"type {model_type}")
    if kind_name != "unigram":
        raise ConversionError(
            f"{path} is a SentencePiece {kind_name} model; only Unigram models (XLM-RoBERTa's "
            "tokenizer) are supported"
        )
    return SentencePieceModel(
        pieces=pieces,
        scores=scores,
        types=types,
        model_type=kind_name,
        precompiled_charsmap=charsmap,
        add_dummy_prefix=dummy_prefix,
        remove_extra_whitespaces=remove_spaces,
    )
