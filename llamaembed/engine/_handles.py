"""The wrappers that own llama.cpp's handles: a model, a context and a batch.

Each owns exactly one native handle and frees it in ``close()`` (or when collected).
With ``engine._native`` the only code that calls llama.cpp's C API.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InferenceError, ModelLoadError
from ._native import (
    QUICK_TOKENIZE_BYTES,
    STRIP_ACCENTS_KEY,
    check_gguf_file,
    extra_buffers,
    lib,
    quick,
    tensor_functions,
)
from ._normalize import strip_accents

__all__ = ["NativeBatch", "NativeContext", "NativeModel", "Vocab"]


@dataclass(frozen=True)
class Vocab:
    """Facts about a model's vocabulary that tokenisation and pairing need."""

    n_tokens: int
    bos: int
    eos: int
    sep: int
    add_bos: bool
    add_eos: bool
    add_sep: bool


class NativeModel:
    """Owns a ``llama_model *``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        vocab_only: bool = False,
        n_gpu_layers: int = 0,
        main_gpu: int = 0,
    ) -> None:
        file = check_gguf_file(path)
        # What llama.cpp would assert on (and so kill the process) is refused here first.
        from . import gguf_check

        gguf_check.check(file)
        llama_cpp = lib()
        params = llama_cpp.llama_model_default_params()
        # llama.cpp takes any count above the model's layers as "all of them".
        params.n_gpu_layers = n_gpu_layers if n_gpu_layers >= 0 else 2**31 - 1
        params.main_gpu = main_gpu
        params.vocab_only = vocab_only
        params.use_extra_bufts = extra_buffers()[0]
        # Accent stripping is done in Python (see _normalize), so llama.cpp's is turned off.
        overrides = (llama_cpp.llama_model_kv_override * 2)()
        overrides[0].key = STRIP_ACCENTS_KEY.encode()
        overrides[0].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_BOOL
        overrides[0].value.val_bool = False
        params.kv_overrides = overrides
        self._lib = llama_cpp
        self._quick_tokenize = quick("llama_tokenize")
        self._lock = threading.Lock()
        self.path = file
        handle = llama_cpp.llama_model_load_from_file(os.fsencode(file), params)
        if not handle:
            raise ModelLoadError(
                f"llama.cpp could not load {file}: the file is truncated, corrupt, or of an "
                "architecture this llama.cpp does not support (set the 'llamaembed.llama_cpp' "
                "logger to DEBUG to see llama.cpp's reason)"
            )
        self._handle: Any = handle
        self._vocab_ptr = llama_cpp.llama_model_get_vocab(handle)
        self.metadata = self._read_metadata()
        meta = self.metadata
        lowercase = meta.get("tokenizer.ggml.normalizer.lowercase", "false") == "true"
        self._strip_accents = meta.get("tokenizer.ggml.model") == "bert" and (
            meta.get(STRIP_ACCENTS_KEY, "true" if lowercase else "false") == "true"
        )
        lc = llama_cpp
        v = self._vocab_ptr
        self.vocab = Vocab(
            n_tokens=lc.llama_vocab_n_tokens(v),
            bos=lc.llama_vocab_bos(v),
            eos=lc.llama_vocab_eos(v),
            sep=lc.llama_vocab_sep(v),
            add_bos=bool(lc.llama_vocab_get_add_bos(v)),
            add_eos=bool(lc.llama_vocab_get_add_eos(v)),
            add_sep=bool(lc.llama_vocab_get_add_sep(v)),
        )
        self.n_embd = lc.llama_model_n_embd(handle)
        self.n_ctx_train = lc.llama_model_n_ctx_train(handle)
        self.n_cls_out = lc.llama_model_n_cls_out(handle)
        self.has_encoder = bool(lc.llama_model_has_encoder(handle))
        self.has_decoder = bool(lc.llama_model_has_decoder(handle))
        self.size_bytes = int(lc.llama_model_size(handle))
        self.n_params = int(lc.llama_model_n_params(handle))
        template = lc.llama_model_chat_template(handle, b"rerank")
        self.rerank_template: str | None = template.decode("utf-8") if template else None

    @property
    def handle(self) -> Any:
        """Return the live ``llama_model *``; raise if the model was closed."""
        if self._handle is None:
            raise ModelLoadError("the model has been closed")
        return self._handle

    def _read_metadata(self) -> dict[str, str]:
        lc = self._lib
        buf = ctypes.create_string_buffer(4096)
        result: dict[str, str] = {}
        for i in range(lc.llama_model_meta_count(self._handle)):
            n = lc.llama_model_meta_key_by_index(self._handle, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            n = lc.llama_model_meta_val_str_by_index(self._handle, i, buf, len(buf))
            if n < 0:
                continue
            result[key] = buf.value.decode("utf-8", "replace")
        return result

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = False
    ) -> npt.NDArray[np.int32]:
        """Return the token ids of a text (special tokens added when the model wants them).

        ``parse_special`` reads markers such as ``[SEP]`` in the text as special tokens
        (for templates; never for user text).
        """
        if self._strip_accents:
            text = strip_accents(text)
        # Lone surrogates cannot be UTF-8: they become "?" rather than invalid bytes.
        data = text.encode("utf-8", "replace")
        lc = self._lib
        tokenize = self._quick_tokenize if len(data) < QUICK_TOKENIZE_BYTES else lc.llama_tokenize
        capacity = len(data) + 8
        while True:
            out = np.empty(capacity, dtype=np.int32)
            n = tokenize(
                self._vocab_ptr,
                data,
                len(data),
                out.ctypes.data_as(ctypes.POINTER(lc.llama_token)),
                capacity,
                add_special,
                parse_special,
            )
            if n >= 0:
                return out[:n].copy()
            capacity = -n + 8

    def detokenize(self, tokens: npt.ArrayLike, *, special: bool = False) -> str:
        """Return the text of token ids (special tokens kept only when ``special``)."""
        ids = np.ascontiguousarray(np.asarray(tokens, dtype=np.int32))
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab.n_tokens):
            raise ValueError(f"token ids must be in [0, {self.vocab.n_tokens})")
        lc = self._lib
        capacity = max(64, ids.size * 16)
        while True:
            buf = ctypes.create_string_buffer(capacity)
            n = lc.llama_detokenize(
                self._vocab_ptr,
                ids.ctypes.data_as(ctypes.POINTER(lc.llama_token)),
                int(ids.size),
                buf,
                capacity,
                not special,
                special,
            )
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            capacity = -n + 16

    def close(self) -> None:
        """Free the model; safe to call twice."""
        with self._lock:
            if self._handle is not None:
                self._lib.llama_model_free(self._handle)
                self._handle = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class NativeBatch:
    """Owns the token, position, sequence and output arrays of a ``llama_batch``.

    The arrays are numpy buffers we allocate ourselves, so filling a batch is a handful of
    vectorised copies instead of a Python loop over tokens.
    """

    def __init__(self, capacity: int) -> None:
        lc = lib()
        self.capacity = capacity
        self.tokens = np.zeros(capacity, dtype=np.int32)
        self.positions = np.zeros(capacity, dtype=np.int32)
        self.n_seq_ids = np.ones(capacity, dtype=np.int32)
        self.seq_ids = np.zeros(capacity, dtype=np.int32)
        self.outputs = np.ones(capacity, dtype=np.int8)
        # seq_id is an int32** : one pointer per token into our flat seq_ids array.
        base = self.seq_ids.ctypes.data
        self._seq_ptrs = (base + 4 * np.arange(capacity, dtype=np.uint64)).astype(np.uint64)
        self._embd: npt.NDArray[np.float32] | None = None  # input embeddings, made on demand
        self.struct = lc.llama_batch()
        self._token_ptr = self.tokens.ctypes.data_as(ctypes.POINTER(lc.llama_token))
        self.struct.token = self._token_ptr
        self.struct.embd = ctypes.POINTER(ctypes.c_float)()
        self.struct.pos = self.positions.ctypes.data_as(ctypes.POINTER(lc.llama_pos))
        self.struct.n_seq_id = self.n_seq_ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        self.struct.seq_id = ctypes.cast(
            self._seq_ptrs.ctypes.data, ctypes.POINTER(ctypes.POINTER(lc.llama_seq_id))
        )
        self.struct.logits = self.outputs.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        self.struct.n_tokens = 0

    def fill(self, sequences: list[npt.NDArray[Any]]) -> int:
        """Load sequences (sequence i gets seq_id i, positions from 0); return the token count.

        A sequence is an int32 array of token ids, or a float32 (n_tokens, n_embd) matrix
        of input embeddings (all sequences of one batch are of the same kind).
        """
        as_embeddings = sequences[0].ndim == 2
        if as_embeddings:
            width = sequences[0].shape[1]
            if self._embd is None or self._embd.shape[1] != width:
                self._embd = np.zeros((self.capacity, width), dtype=np.float32)
            self.struct.token = ctypes.POINTER(ctypes.c_int32)()
            self.struct.embd = self._embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        else:
            self.struct.token = self._token_ptr
            self.struct.embd = ctypes.POINTER(ctypes.c_float)()
        offset = 0
        for seq, values in enumerate(sequences):
            n = len(values)
            end = offset + n
            if end > self.capacity:
                raise InferenceError("internal error: batch overflow")
            if as_embeddings:
                assert self._embd is not None
                self._embd[offset:end] = values
            else:
                self.tokens[offset:end] = values
            self.positions[offset:end] = np.arange(n, dtype=np.int32)
            self.seq_ids[offset:end] = seq
            offset = end
        self.struct.n_tokens = offset
        return offset


class StopAt:
    """A graph callback that keeps the rows of one named node and stops the graph there.

    llama.cpp computes a decoder's projection onto its vocabulary for every token even in
    embedding mode, where nothing reads it (llama.cpp #24713): a quarter to nearly half of
    the work of an embedding model like Qwen3-Embedding. Its evaluation callback is asked
    about each node before it is computed; answering yes for the final norm
    (``result_norm``, the hidden states the pooling reads) makes the scheduler compute up
    to it and call back, and answering no then ends the graph: the projection and
    llama.cpp's own pooling are never computed, and the caller pools the kept rows.
    If the node is missing or not the expected (n_tokens, n_embd) float32 rows, the graph
    runs whole and ``rows`` stays None.
    """

    def __init__(self, name: str) -> None:
        fns = tensor_functions()
        self.name = name.encode()
        self.expect = 0  # the element count the node must have: n_tokens * n_embd
        self.rows: npt.NDArray[np.float32] | None = None
        self.stops = 0  # micro-batches that ended at the node
        get_name, nelements, element_size = (
            fns.ggml_get_name,
            fns.ggml_nelements,
            fns.ggml_element_size,
        )
        get_data, contiguous = fns.ggml_get_data, fns.ggml_is_contiguous

        def on_node(tensor: int, ask: bool, _: int) -> bool:
            # ctypes answers 0 ("stop") for a callback that raises: never let one escape
            try:
                if get_name(tensor) != self.name:
                    return not ask  # not wanted; (after a node: go on)
                if ask:
                    return True
                n = self.expect
                if nelements(tensor) != n or element_size(tensor) != 4 or not contiguous(tensor):
                    return True
                data = get_data(tensor)
                if not data:
                    return True
                self.rows = np.ctypeslib.as_array((ctypes.c_float * n).from_address(data)).copy()
                self.stops += 1
                return False
            except Exception:  # the graph runs whole and llama.cpp's own output is used
                self.rows = None
                return not ask

        self.callback = lib().ggml_backend_sched_eval_callback(on_node)


class NativeContext:
    """Owns a ``llama_context *`` in embedding mode, plus the batch it decodes.

    ``stop_at`` names the node whose rows a decoder's pooling reads (``StopAt``): the
    context then pools them itself (each sequence's last row, through ``head`` for a
    reranker) and the rest of the graph is skipped.
    """

    def __init__(
        self,
        model: NativeModel,
        *,
        n_ctx: int,
        n_ubatch: int,
        n_seq_max: int,
        n_threads: int,
        pooling_code: int,
        embeddings: bool,
        flash_attn: bool,
        stop_at: str | None = None,
        head: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]] | None = None,
    ) -> None:
        lc = lib()
        self._lib = lc
        self.model = model
        params = lc.llama_context_default_params()
        self._stop = StopAt(stop_at) if stop_at and tensor_functions() is not None else None
        self._head = head  # a reranker's head, applied to the kept last-token rows
        if self._stop is not None:
            params.cb_eval = self._stop.callback
        params.n_ctx = n_ctx
        params.n_batch = n_ubatch
        params.n_ubatch = n_ubatch
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.embeddings = embeddings
        params.pooling_type = pooling_code
        params.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        # Decoders keep a KV cache: one cache shared by all sequences of a batch.
        params.kv_unified = True
        params.no_perf = True
        handle = lc.llama_init_from_model(model.handle, params)
        if not handle:
            raise ModelLoadError(
                f"llama.cpp could not create a context for {model.path} "
                f"(n_ctx={n_ctx}, n_ubatch={n_ubatch}, n_seq_max={n_seq_max})"
            )
        self._handle: Any = handle
        self.n_ubatch = n_ubatch
        self.n_seq_max = n_seq_max
        self.pooling_code = int(lc.llama_pooling_type(handle))
        self.batch = NativeBatch(n_ubatch)
        self._memory = lc.llama_get_memory(handle)
        self._memory_clear = quick("llama_memory_clear")
        self._embeddings_seq = quick("llama_get_embeddings_seq")
        self._set_threads = quick("llama_set_n_threads")
        self.n_threads = n_threads

    @property
    def stops(self) -> int:
        """Return how many micro-batches ended at the ``stop_at`` node (0 without one)."""
        return self._stop.stops if self._stop is not None else 0

    def set_threads(self, n_threads: int) -> None:
        """Run the next decodes on ``n_threads`` threads."""
        if self._handle is not None and n_threads != self.n_threads:
            self._set_threads(self._handle, n_threads, n_threads)
            self.n_threads = n_threads

    def _run(self, sequences: list[npt.NDArray[Any]]) -> int:
        if self._handle is None:
            raise InferenceError("the model has been closed")
        if len(sequences) > self.n_seq_max:
            raise InferenceError("internal error: too many sequences in one batch")
        n_tokens = self.batch.fill(sequences)
        if self._memory:
            self._memory_clear(self._memory, True)
        status = self._lib.llama_decode(self._handle, self.batch.struct)
        if status != 0:
            raise InferenceError(
                f"llama.cpp failed to encode a batch of {n_tokens} tokens (status {status})"
            )
        return n_tokens

    def pooled(self, sequences: list[npt.NDArray[Any]], width: int) -> npt.NDArray[np.float32]:
        """Encode sequences in one micro-batch; return one pooled row per sequence."""
        stop = self._stop
        n_embd = self.model.n_embd
        ends = np.cumsum([len(s) for s in sequences]) - 1  # each sequence's last row
        if stop is not None:
            stop.rows, stop.expect = None, (int(ends[-1]) + 1) * n_embd
        self._run(sequences)
        if stop is not None and stop.rows is not None:
            # the graph ended at the final norm: pool its rows (last token of each sequence)
            last = stop.rows.reshape(-1, n_embd)[ends]
            return self._head(last) if self._head is not None else last
        out = np.empty((len(sequences), width), dtype=np.float32)
        for seq in range(len(sequences)):
            ptr = self._embeddings_seq(self._handle, seq)
            if not ptr:
                raise InferenceError(f"llama.cpp returned no pooled output for sequence {seq}")
            out[seq] = np.ctypeslib.as_array(ptr, shape=(width,))
        return out

    def token_level(
        self, sequences: list[npt.NDArray[np.int32]], width: int
    ) -> list[npt.NDArray[np.float32]]:
        """Encode sequences in one micro-batch; return each sequence's token vectors."""
        n_tokens = self._run(sequences)
        # llama_get_embeddings re-orders outputs back into batch order before returning.
        ptr = self._lib.llama_get_embeddings(self._handle)
        if not ptr:
            raise InferenceError("llama.cpp returned no token embeddings")
        flat = np.ctypeslib.as_array(ptr, shape=(n_tokens * width,)).reshape(n_tokens, width)
        result = []
        offset = 0
        for tokens in sequences:
            result.append(flat[offset : offset + len(tokens)].copy())
            offset += len(tokens)
        return result

    def close(self) -> None:
        """Free the context; safe to call twice."""
        if self._handle is not None:
            self._lib.llama_free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
