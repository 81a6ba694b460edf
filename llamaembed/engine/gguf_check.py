"""Validate a GGUF file before llama.cpp sees it: what llama.cpp would assert on, we refuse.

llama.cpp trusts much of a GGUF file: two equal token strings trip
``GGML_ASSERT(id_to_token.size() == token_to_id.size())`` and kill the process, a
special-token id past the vocabulary indexes out of bounds, a position table shorter than
the context asserts on long input (llama.cpp #10157). This module reads the header, the
metadata and the tensor table with bounds checks on every length, count and offset, and
raises ModelLoadError naming the problem. It reads only the header (the tensor data is not
touched), so it costs a few milliseconds. ``scan`` also reports where each field lies,
which the fuzz test uses to aim its mutations.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["GGML_TYPE_SIZES", "GGUFHeader", "check", "position_rows", "scan", "validate"]

# ggml type id -> (elements per block, bytes per block), as in ggml.c's type traits.
GGML_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 40),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
    40: (64, 36),  # NVFP4
    41: (128, 18),  # Q1_0
}

# value type -> struct format of one scalar (8 = string, 9 = array).
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_MAX_DIMS = 4
_MAX_NAME = 64  # GGML_MAX_NAME
_SPECIAL_IDS = ("bos", "eos", "unknown", "separator", "padding", "mask", "cls", "eot", "eom")


@dataclass
class GGUFHeader:
    """What ``scan`` read: metadata, tensors (name -> (shape, type, offset)) and field offsets."""

    version: int
    metadata: dict[str, Any]
    tensors: dict[str, tuple[tuple[int, ...], int, int]]
    data_offset: int
    file_size: int
    u64_fields: list[int] = field(default_factory=list)  # byte offsets of counts and lengths


class _Reader:
    def __init__(self, data: bytes, file_size: int, record: bool) -> None:
        self.data = data
        self.pos = 0
        self.file_size = file_size
        self.record = record
        self.u64_fields: list[int] = []

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelLoadError(f"the file ends inside {what} (truncated or corrupt)")

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize("<" + fmt)
        self.need(size, what)
        value = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def count(self, what: str, limit: int) -> int:
        if self.record:
            self.u64_fields.append(self.pos)
        value = int(self.unpack("Q", what))
        if value > limit:
            raise ModelLoadError(f"{what} is {value}, more than the file can hold")
        return value

    def string(self, what: str) -> bytes:
        n = self.count(f"the length of {what}", self.file_size - self.pos)
        self.need(n, what)
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def strings(self, n: int, what: str) -> list[bytes]:
        """Read n length-prefixed strings (a vocabulary: the hot loop of a header).

        The loop has no bounds checks: a slice past the buffer is short, not an error, and
        the position it leaves is checked once at the end (then re-walked to name the item).
        """
        data, pos, limit = self.data, self.pos, len(self.data)
        unpack = _U64.unpack_from
        out: list[bytes] = []
        append = out.append
        try:
            for _ in range(n):
                (length,) = unpack(data, pos)
                pos += 8
                if length > limit:
                    break
                append(data[pos : pos + length])
                pos += length
        except struct.error:
            pos = limit + 1
        if pos > limit or len(out) < n:
            return self._strings_checked(n, what)
        if self.record:
            self._record_strings(self.pos, n)
        self.pos = pos
        return out

    def _strings_checked(self, n: int, what: str) -> list[bytes]:
        return [self.string(f"item {i} of {what}") for i in range(n)]

    def _record_strings(self, pos: int, n: int) -> None:
        for _ in range(n):
            self.u64_fields.append(pos)
            pos += 8 + _U64.unpack_from(self.data, pos)[0]

    def value(self, vtype: int, what: str) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what).decode("utf-8", "surrogateescape")
        if vtype == _ARRAY:
            etype = int(self.unpack("I", f"the element type of {what}"))
            if etype == _ARRAY:
                raise ModelLoadError(f"{what} is an array of arrays, which GGUF does not allow")
            if etype != _STRING and etype not in _SCALARS:
                raise ModelLoadError(f"{what} has an unknown element type {etype}")
            remaining = self.file_size - self.pos
            width = 8 if etype == _STRING else struct.calcsize("<" + _SCALARS[etype])
            n = self.count(f"the length of {what}", remaining // width)
            if etype == _STRING:
                return self.strings(n, what)
            size = n * width
            self.need(size, what)
            start = self.pos
            self.pos += size
            return _ScalarArray(self.data, start, n, _SCALARS[etype])
        raise ModelLoadError(f"{what} has an unknown value type {vtype}")


class _ScalarArray:
    """A numeric array left in the file's bytes until asked for (vocabularies are large)."""

    def __init__(self, data: bytes, start: int, n: int, fmt: str) -> None:
        self.data, self.start, self.n, self.fmt = data, start, n, fmt

    def __len__(self) -> int:
        return self.n

    def values(self) -> list[Any]:
        return list(struct.unpack_from(f"<{self.n}{self.fmt}", self.data, self.start))


def scan(path: str | os.PathLike[str], *, record: bool = False) -> GGUFHeader:
    """Return the header of a GGUF file, checking every length, count and offset.

    ``record`` also lists the byte offset of every 64-bit count and length (for fuzzing).
    """
    file = Path(path)
    size = file.stat().st_size
    with file.open("rb") as handle:
        # The header precedes the tensor data; read it in growing pieces so that a small
        # header costs a small read even for a multi-gigabyte model.
        chunk = min(size, 1 << 20)
        data = handle.read(chunk)
        while True:
            try:
                return _parse(data, size, record)
            except _NeedMore:
                if len(data) >= size:
                    raise ModelLoadError(f"{file}: the file ends inside its header") from None
                data += handle.read(len(data))


class _NeedMore(Exception):
    pass


def _parse(data: bytes, file_size: int, record: bool) -> GGUFHeader:
    reader = _Reader(data, file_size, record)
    try:
        return _parse_with(reader, file_size)
    except ModelLoadError as exc:
        if "the file ends inside" in str(exc) and len(data) < file_size:
            raise _NeedMore from exc
        raise


def _parse_with(r: _Reader, file_size: int) -> GGUFHeader:
    if r.unpack("4s", "the magic") != b"GGUF":
        raise ModelLoadError("not a GGUF file (it does not start with the GGUF magic)")
    version = int(r.unpack("I", "the version"))
    if version not in (2, 3):
        raise ModelLoadError(f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors = r.count("the tensor count", file_size // 32)
    n_kv = r.count("the metadata count", file_size // 12)
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key_bytes = r.string(f"metadata key {i}")
        try:
            key = key_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelLoadError(f"metadata key {i} is not valid UTF-8") from None
        if key in metadata:
            raise ModelLoadError(f"metadata key {key!r} appears twice")
        vtype = int(r.unpack("I", f"the type of {key!r}"))
        metadata[key] = r.value(vtype, repr(key))
    tensors: dict[str, tuple[tuple[int, ...], int, int]] = {}
    for i in range(n_tensors):
        name = r.string(f"tensor name {i}").decode("utf-8", "replace")
        if len(name) >= _MAX_NAME:
            raise ModelLoadError(f"tensor name {name[:40]!r}… is longer than {_MAX_NAME - 1}")
        if name in tensors:
            raise ModelLoadError(f"tensor {name!r} appears twice")
        n_dims = int(r.unpack("I", f"the dimension count of {name!r}"))
        if not 1 <= n_dims <= _MAX_DIMS:
            raise ModelLoadError(f"tensor {name!r} has {n_dims} dimensions (1 to 4 allowed)")
        shape = tuple(r.count(f"a dimension of {name!r}", 2**62) for _ in range(n_dims))
        ttype = int(r.unpack("I", f"the type of {name!r}"))
        if r.record:
            r.u64_fields.append(r.pos)
        offset = int(r.unpack("Q", f"the data offset of {name!r}"))
        tensors[name] = (shape, ttype, offset)
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelLoadError(f"general.alignment {alignment!r} is not a power of two")
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    header = GGUFHeader(version, metadata, tensors, data_offset, file_size, r.u64_fields)
    _check_tensors(header, alignment)
    return header


def _check_tensors(header: GGUFHeader, alignment: int) -> None:
    available = header.file_size - header.data_offset
    if available < 0:
        raise ModelLoadError("the file ends before its tensor data (truncated)")
    for name, (shape, ttype, offset) in header.tensors.items():
        if ttype not in GGML_TYPE_SIZES:
            raise ModelLoadError(f"tensor {name!r} has an unknown ggml type {ttype}")
        block, type_size = GGML_TYPE_SIZES[ttype]
        if any(d == 0 for d in shape):
            raise ModelLoadError(f"tensor {name!r} has an empty dimension {shape}")
        if shape[0] % block:
            raise ModelLoadError(
                f"tensor {name!r}: its first dimension {shape[0]} is not a multiple of its "
                f"type's block size {block}"
            )
        elements = 1
        for d in shape:
            elements *= d
            if elements > 2**62:
                raise ModelLoadError(f"tensor {name!r} has an impossible shape {shape}")
        nbytes = elements // block * type_size
        if offset % alignment:
            raise ModelLoadError(f"tensor {name!r} has a misaligned data offset {offset}")
        if offset + nbytes > available:
            raise ModelLoadError(
                f"tensor {name!r} ({nbytes} bytes at offset {offset}) lies past the end of the "
                "file (truncated or corrupt)"
            )


VALIDATOR_VERSION = 2  # bump when a check is added: files stamped by an older one are re-read


def _identity(file: Path) -> tuple[Any, ...]:
    stat = file.stat()
    return (str(file.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _stamp_path(identity: tuple[Any, ...]) -> Path:
    from .._files import cache_root

    digest = hashlib.sha256(repr((VALIDATOR_VERSION, *identity)).encode()).hexdigest()[:32]
    return cache_root() / "validated" / digest


def _header_digest(file: Path, length: int) -> str:
    with file.open("rb") as handle:
        return hashlib.blake2b(handle.read(length), digest_size=16).hexdigest()


def check(path: str | os.PathLike[str]) -> None:
    """Validate a model file, re-scanning only when its header bytes or size changed.

    A file that passed leaves a stamp in llamaembed's cache folder, keyed by its identity
    (path, inode, size, mtime) and holding its header's length and digest. A later load
    hashes that many header bytes (about 1 ms for a 30k-token vocabulary, against 8 ms
    for the scan) and skips the scan when they match, so even a same-size rewrite within
    one mtime tick is caught. Truncation changes the size, which is part of the identity.
    """
    file = Path(path)
    stamp = _stamp_path(_identity(file))
    try:
        length_text, digest = stamp.read_text().split()
        if _header_digest(file, int(length_text)) == digest:
            return
    except (OSError, ValueError):
        pass
    header = validate(file)
    with contextlib.suppress(OSError):  # a read-only cache only costs the re-scan
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{header.data_offset} {_header_digest(file, header.data_offset)}")


def validate(path: str | os.PathLike[str]) -> GGUFHeader:
    """Return the checked header, or raise ModelLoadError for what llama.cpp would assert on."""
    file = Path(path)
    try:
        header = scan(file)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{file.name} is not a valid GGUF model: {exc}") from None
    try:
        _check_model(header)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{file.name} is not a valid GGUF model: {exc}") from None
    return header


def _check_model(header: GGUFHeader) -> None:
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelLoadError("general.architecture is missing or not a string")
    tokens = meta.get("tokenizer.ggml.tokens")
    if tokens is not None:
        if not isinstance(tokens, list) or not tokens:
            raise ModelLoadError("tokenizer.ggml.tokens is not a non-empty list of strings")
        n_vocab = len(tokens)
        if len(set(tokens)) != n_vocab:
            seen: set[bytes] = set()
            for duplicate in tokens:
                if duplicate in seen:
                    break
                seen.add(duplicate)
            raise ModelLoadError(
                f"the vocabulary has the token {duplicate.decode('utf-8', 'replace')!r} twice"
            )
        for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            if key in meta and (not hasattr(meta[key], "__len__") or len(meta[key]) != n_vocab):
                raise ModelLoadError(f"{key} does not have one entry per token ({n_vocab})")
        for name in _SPECIAL_IDS:
            key = f"tokenizer.ggml.{name}_token_id"
            value = meta.get(key)
            if value is not None and (not isinstance(value, int) or not 0 <= value < n_vocab):
                raise ModelLoadError(f"{key} = {value!r} is not a token id (0..{n_vocab - 1})")
    for suffix in ("context_length", "embedding_length", "block_count"):
        value = meta.get(f"{arch}.{suffix}")
        if value is not None and (not isinstance(value, int) or value <= 0 or value > 2**24):
            raise ModelLoadError(f"{arch}.{suffix} = {value!r} is out of range")
    for suffix in ("layer_norm_epsilon", "layer_norm_rms_epsilon"):
        # ggml asserts eps >= 0 in its norm kernels: a negative one aborts the process.
        value = meta.get(f"{arch}.attention.{suffix}")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value < 1
        ):
            raise ModelLoadError(f"{arch}.attention.{suffix} = {value!r} is out of range")
    heads = meta.get(f"{arch}.attention.head_count")
    width = meta.get(f"{arch}.embedding_length")
    if heads is not None:
        heads_list = heads.values() if isinstance(heads, _ScalarArray) else [heads]
        for h in heads_list:
            if not isinstance(h, int) or h <= 0 or (isinstance(width, int) and width % h):
                raise ModelLoadError(
                    f"{arch}.attention.head_count = {h!r} does not divide the embedding "
                    f"width {width!r}"
                )
    rows = position_rows(header)
    context = meta.get(f"{arch}.context_length")
    if rows is not None and isinstance(context, int) and rows < context:
        raise ModelLoadError(
            f"position_embd.weight has {rows} rows but {arch}.context_length is {context}: "
            "positions past the table would fail (llama.cpp #10157); fix the context length"
        )
    token_embd = header.tensors.get("token_embd.weight")
    if token_embd is not None and tokens is not None:
        shape = token_embd[0]
        if len(shape) != 2 or shape[1] != len(tokens):
            raise ModelLoadError(
                f"token_embd.weight has shape {shape}, not (embedding width, {len(tokens)} tokens)"
            )


def position_rows(header: GGUFHeader) -> int | None:
    """Return the rows of the learned position table, if the model has one."""
    position = header.tensors.get("position_embd.weight")
    if position is None or len(position[0]) < 2:
        return None
    return int(position[0][1])
