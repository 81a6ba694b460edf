"""``Llama``: a GGUF model in embedding mode — embeddings, token vectors and rerank scores."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from .._files import sample_file
from .._types import FloatArray, TokenArray
from ..embedder import Capabilities, Embedder
from ..errors import (
    EmbeddingsDisabledError,
    EmptyInputError,
    InputTooLongError,
    ModelLoadError,
    PoolingError,
    RerankNotSupportedError,
)
from ..params import EmbedOptions, LlamaParams, Pooling
from .inputs import check_batch_size, check_texts, check_token_ids
from .pooling import l2_normalize, sigmoid

if TYPE_CHECKING:
    from ..hub.spec import ModelSpec

__all__ = ["Llama", "RerankResult"]

logger = logging.getLogger(__name__)

# Decoders train on long contexts; a default this size keeps the KV cache and compute
# buffers small. Pass n_ctx explicitly to go further.
_DECODER_DEFAULT_CTX = 2048


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its position in the input, its score and its text."""

    index: int
    score: float
    text: str


def _file_fingerprint(path: Path, pooling: Pooling) -> str:
    """Return a short hash of the file's size and sampled contents, plus the pooling."""
    digest = hashlib.sha256()
    sample_file(digest, path)
    digest.update(pooling.value.encode())
    return digest.hexdigest()[:32]


def _segment_tables(path: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Return the word-embedding table and ``type_1 - type_0`` read from a BERT GGUF."""
    import gguf

    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    tables = []
    for name in ("token_embd.weight", "token_types.weight"):
        tensor = tensors[name]
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        tables.append(np.asarray(values, dtype=np.float32).reshape(-1, int(tensor.shape[0])))
    words, types = tables
    return words, types[1] - types[0]


_gpu_warned = False

GPU_BUILD_HINT = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "--no-deps llama-cpp-python==0.3.36"
)


def _has_cls_head(path: Path) -> bool:
    """Return True when the file holds a classification head (``cls.output.weight``).

    llama.cpp's converter writes cross-encoders with their labels (an array, which
    llama.cpp's metadata API does not expose) and no pooling type, so the tensor itself
    is the sign.
    """
    from .gguf_check import scan

    return "cls.output.weight" in scan(path).tensors


def _warn_no_gpu_once() -> None:
    global _gpu_warned
    if not _gpu_warned:
        _gpu_warned = True
        logger.warning(
            "GPU layers were asked for, but this llama-cpp-python build has no GPU backend; "
            "running on the CPU. For NVIDIA GPUs rebuild it with CUDA: %s",
            GPU_BUILD_HINT,
        )


class Llama(Embedder):
    """A GGUF embedding or reranking model opened in llama.cpp.

    ``Llama("model.gguf", pooling="cls")`` or ``Llama.load(LlamaParams(...))``. Methods are
    safe to call from several threads (calls on one model run one at a time). Close it
    with ``close()`` or use it as a context manager. ``warn_pooling=False`` keeps quiet
    when the pooling asked for differs from the one the GGUF was trained with.
    """

    def __init__(
        self, model_path: str | os.PathLike[str], *, warn_pooling: bool = True, **options: Any
    ) -> None:
        params = options.pop("params", None)
        if params is None:
            params = LlamaParams(os.fspath(model_path), **options)
        self._params: LlamaParams = params
        self._warn_pooling = warn_pooling
        self._lock = threading.RLock()
        self._context: Any = None
        from . import _native

        if params.verbose:
            native_logger = logging.getLogger(_native.__name__)
            native_logger.setLevel(logging.DEBUG)
            if not native_logger.handlers:
                native_logger.addHandler(logging.StreamHandler())
        n_gpu_layers = params.n_gpu_layers
        if n_gpu_layers and not _native.supports_gpu_offload():
            _warn_no_gpu_once()
            n_gpu_layers = 0
        self.n_gpu_layers = n_gpu_layers
        self._model = _native.NativeModel(
            params.model_path, n_gpu_layers=n_gpu_layers, main_gpu=params.main_gpu
        )
        try:
            self._setup(_native)
        except BaseException:
            self._model.close()
            raise

    @staticmethod
    def system_info() -> dict[str, Any]:
        """Return llama.cpp's version, backends, devices, CPU features and the auto type."""
        from .system import system_info

        return system_info()

    @classmethod
    def load(cls, params: LlamaParams, *, warn_pooling: bool = True) -> Llama:
        """Return a model opened from its parameters."""
        return cls(params.model_path, params=params, warn_pooling=warn_pooling)

    @classmethod
    def from_pretrained(
        cls,
        name: str | None = None,
        quant: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Llama:
        """Return a catalogue model (downloaded once, then loaded offline); None = default."""
        from ..hub.registry import resolve_params

        return cls.load(resolve_params(name, quant=quant, cache_dir=cache_dir, **options))

    def _setup(self, native: Any) -> None:
        params = self._params
        model = self._model
        meta = model.metadata
        self.architecture = meta.get("general.architecture", "unknown")
        causal = meta.get(f"{self.architecture}.attention.causal", "true") == "true"
        self._is_decoder = causal and model.has_decoder
        gguf_code = meta.get(f"{self.architecture}.pooling_type")
        self.gguf_pooling: Pooling | None = (
            Pooling.parse(int(gguf_code)) if gguf_code not in (None, "") else None
        )
        self._has_rank_head = (
            self.gguf_pooling is Pooling.RANK
            or f"{self.architecture}.classifier.output_labels" in meta
            or (self.gguf_pooling is None and not self._is_decoder and _has_cls_head(model.path))
        )
        if self._has_rank_head and self.gguf_pooling is None:
            default = Pooling.RANK  # a cross-encoder from llama.cpp's converter: no pooling key
        else:
            default = self.gguf_pooling or (Pooling.LAST if self._is_decoder else Pooling.MEAN)
        pooling = params.pooling or default
        mismatch = self.gguf_pooling not in (None, params.pooling)
        if params.pooling is not None and mismatch and self._warn_pooling:
            logger.warning(
                "%s was trained with %s pooling but is opened with %s pooling",
                Path(params.model_path).name,
                self.gguf_pooling.value if self.gguf_pooling else "?",
                params.pooling.value,
            )
        if pooling is Pooling.RANK and not self._has_rank_head:
            raise RerankNotSupportedError(
                f"{Path(params.model_path).name} has no classification head, so rank pooling "
                "is impossible: it is a bi-encoder; use embed() and cosine similarity"
            )
        self.pooling: Pooling = pooling
        trained = model.n_ctx_train or 512
        limit = min(trained, _DECODER_DEFAULT_CTX) if self._is_decoder else trained
        self.n_ctx = min(params.n_ctx, trained) if params.n_ctx else limit
        self.n_embd = model.n_embd
        self.n_cls_out = model.n_cls_out
        self.metadata: dict[str, str] = {
            k: v for k, v in meta.items() if not k.startswith("tokenizer.ggml.token")
        }
        self.fingerprint = _file_fingerprint(model.path, pooling)
        # llama.cpp adds token type 0 to every token, so a BERT cross-encoder would read
        # the document as "sentence A". Feeding input embeddings with type 1 - type 0
        # added to the document's tokens gives Hugging Face's scores exactly.
        self._segments: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None
        if (
            params.embeddings  # rerank needs embedding mode; skip the 47 MB table otherwise
            and pooling is Pooling.RANK
            and self.architecture == "bert"
            and meta.get("tokenizer.ggml.token_type_count") == "2"
            and model.rerank_template is None
        ):
            self._segments = _segment_tables(model.path)
        # Every text must fit one micro-batch (encoders attend across it), so the
        # micro-batch holds at least a full context. A decoder's batch also fills its KV
        # cache, so it holds at most n_ctx tokens (llama.cpp cuts n_batch to n_ctx for
        # causal models). A micro-batch cannot hold more sequences than tokens, and
        # llama.cpp aborts (GGML_ASSERT in output_reserve) when n_seq_max exceeds it.
        n_ubatch = self.n_ctx if self._is_decoder else max(self.n_ctx, params.n_batch)
        self._budget = min(params.n_batch, n_ubatch)  # tokens per micro-batch when packing
        self._n_seq_max = min(params.n_seq_max, n_ubatch)
        if params.embeddings:
            self._context = native.NativeContext(
                model,
                n_ctx=self.n_ctx,
                n_ubatch=n_ubatch,
                n_seq_max=self._n_seq_max,
                n_threads=params.threads,
                pooling_code=pooling.llama_code,
                embeddings=True,
                flash_attn=params.flash_attn,
            )

    # ----------------------------------------------------------------- properties
    @property
    def params(self) -> LlamaParams:
        """Return the parameters this model was opened with."""
        return self._params

    @property
    def model_path(self) -> Path:
        """Return the GGUF file's path."""
        return Path(self._params.model_path)

    @property
    def query_prefix(self) -> str:
        """Return the prefix ``embed_query`` puts before a query (the catalogue's)."""
        return self._params.query_prefix

    @property
    def document_prefix(self) -> str:
        """Return the prefix ``embed_documents`` puts before a document."""
        return self._params.document_prefix

    @property
    def spec(self) -> ModelSpec:
        """Return the description that reopens this model: its parameters."""
        from ..hub.spec import ModelSpec

        return ModelSpec(name=self.model_path.stem, params=self._params)

    @property
    def capabilities(self) -> Capabilities:
        """Return what the pooling allows: vectors, token vectors or pair scores (rank)."""
        return Capabilities(
            dense=self.pooling not in (Pooling.RANK, Pooling.NONE),
            rerank=self.pooling is Pooling.RANK,
            multi_vector=self.pooling is Pooling.NONE,
        )

    @property
    def has_rank_head(self) -> bool:
        """Return True when the file holds a classification head, whatever the pooling."""
        return self._has_rank_head

    @property
    def max_tokens(self) -> int:
        """Return the most tokens one text (or query–document pair) may have."""
        return self.n_ctx

    def __repr__(self) -> str:
        return (
            f"Llama({self.model_path.name!r}, arch={self.architecture}, n_embd={self.n_embd}, "
            f"pooling={self.pooling.value}, n_ctx={self.n_ctx})"
        )

    # ----------------------------------------------------------------- tokens
    def tokenize(self, text: str, *, add_special: bool = True) -> TokenArray:
        """Return the int32 token ids of a text."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        return self._model.tokenize(text, add_special=add_special)

    def detokenize(self, tokens: npt.ArrayLike, *, special: bool = False) -> str:
        """Return the text of token ids."""
        return str(self._model.detokenize(tokens, special=special))

    def _fit(self, tokens: TokenArray, index: int, truncate: bool) -> tuple[TokenArray, bool]:
        limit = self.n_ctx
        if len(tokens) <= limit:
            return tokens, False
        if not truncate:
            raise InputTooLongError(
                f"text at index {index} has {len(tokens)} tokens; the model takes at most "
                f"{limit}. Pass truncate=True or split it (llamaembed.chunking).",
                index=index,
                n_tokens=len(tokens),
                limit=limit,
            )
        vocab = self._model.vocab
        closing = vocab.add_eos and int(tokens[-1]) in (vocab.eos, vocab.sep)
        if closing:
            return np.concatenate([tokens[: limit - 1], tokens[-1:]]), True
        return tokens[:limit], True

    def _prepare(
        self,
        texts: list[str],
        options: EmbedOptions,
        on_truncate: Callable[[int], None] | None = None,
    ) -> list[TokenArray]:
        vocab = self._model.vocab
        prepared = []
        n_truncated = 0
        for i, text in enumerate(texts):
            tokens = self._model.tokenize(text, add_special=True)
            if not options.start_token and vocab.add_bos and len(tokens) and tokens[0] == vocab.bos:
                tokens = tokens[1:]
            if len(tokens) == 0:
                raise EmptyInputError(
                    f"text at index {i} gives no tokens (this model adds no start token); "
                    "skip empty texts"
                )
            tokens, cut = self._fit(tokens, i, options.truncate)
            n_truncated += cut
            prepared.append(tokens)
        if n_truncated and on_truncate is not None:
            on_truncate(n_truncated)
        elif n_truncated:
            logger.warning(
                "%d of %d texts were longer than %d tokens and were truncated",
                n_truncated,
                len(texts),
                self.n_ctx,
            )
        return prepared

    # ----------------------------------------------------------------- batching
    def _plan(self, lengths: Sequence[int], batch_size: int | None) -> list[list[int]]:
        """Group text indices into micro-batches: longest first, packed up to n_batch tokens."""
        max_seqs = min(self._n_seq_max, batch_size or self._n_seq_max)
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        used = 0
        budget = self._budget
        for i in order:
            n = lengths[i]
            full = used + n > max(budget, lengths[current[0]]) if current else False
            if full or len(current) >= max_seqs:
                batches.append(current)
                current, used = [], 0
            current.append(i)
            used += n
        if current:
            batches.append(current)
        return batches

    def _context_or_raise(self) -> Any:
        if not self._params.embeddings:
            raise EmbeddingsDisabledError(
                "this model was opened with embeddings=False; open it with embeddings=True"
            )
        if self._context is None:
            raise ModelLoadError("the model has been closed")
        return self._context

    def _run(
        self,
        sequences: list[npt.NDArray[Any]],
        width: int,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> FloatArray | list[FloatArray]:
        token_level = self.pooling is Pooling.NONE
        batches = self._plan([len(s) for s in sequences], batch_size)
        rows: list[FloatArray] = [np.empty(0, np.float32)] * len(sequences)
        pooled = np.empty((len(sequences), width), dtype=np.float32)
        progress = None
        if show_progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(sequences), unit="text", desc="embedding")
        try:
            with self._lock:
                context = self._context_or_raise()
                for batch in batches:
                    group = [sequences[i] for i in batch]
                    if token_level:
                        for i, matrix in zip(batch, context.token_level(group, width), strict=True):
                            rows[i] = matrix
                    else:
                        pooled[batch] = context.pooled(group, width)
                    if progress is not None:
                        progress.update(len(batch))
        finally:
            if progress is not None:
                progress.close()
        return rows if token_level else pooled

    # ----------------------------------------------------------------- prepared inputs
    # The server packs inputs of many requests into shared batches, so it prepares each
    # request's inputs first (tokenising, checking lengths) and runs them together later.
    def prepare_texts(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        on_truncate: Callable[[int], None] | None = None,
    ) -> list[TokenArray]:
        """Return the token sequences ``forward`` takes for texts (specials added, fitted).

        Truncated texts are logged as a warning, or counted by ``on_truncate(n)`` instead
        (a server counts them in a metric rather than logging every request).
        """
        self._require_embedder()
        return self._prepare(check_texts(texts), EmbedOptions(truncate=truncate), on_truncate)

    def prepare_tokens(
        self, token_lists: Sequence[Sequence[int]], *, truncate: bool = True
    ) -> list[TokenArray]:
        """Return token sequences for ``forward`` from token ids, used as given.

        Ids must be the model's vocabulary ids; no special tokens are added (an id list
        from ``tokenize()`` or a Hugging Face tokenizer already holds them).
        """
        self._require_embedder()
        n_vocab = self.n_vocab
        prepared = []
        for i, ids in enumerate(token_lists):
            tokens = check_token_ids(ids, i, n_vocab)
            fitted, _ = self._fit(tokens.astype(np.int32), i, truncate)
            prepared.append(fitted)
        return prepared

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> list[npt.NDArray[Any]]:
        """Return the query–document inputs ``forward`` takes to score documents."""
        self._require_reranker()
        if not isinstance(query, str):
            raise TypeError(f"query is {type(query).__name__}, not str")
        return self._pairs(query, check_texts(documents))

    def forward(self, sequences: list[npt.NDArray[Any]]) -> FloatArray:
        """Return the raw pooled outputs of prepared inputs, one row each, in input order.

        Rows are unnormalised vectors (n_embd wide) or, for a cross-encoder, its class
        logits (n_cls_out wide). Inputs are packed into micro-batches longest first.
        """
        if self.pooling is Pooling.NONE:
            raise PoolingError("forward() needs pooled outputs; this model has pooling none")
        width = self.n_cls_out if self.pooling is Pooling.RANK else self.n_embd
        if not sequences:
            return np.empty((0, width), dtype=np.float32)
        result = self._run(sequences, width)
        assert isinstance(result, np.ndarray)
        return result

    @property
    def n_vocab(self) -> int:
        """Return the number of tokens in the model's vocabulary."""
        return int(self._model.vocab.n_tokens)

    # ----------------------------------------------------------------- embeddings
    def _require_reranker(self) -> None:
        if self.pooling is not Pooling.RANK:
            raise RerankNotSupportedError(
                f"{self.model_path.name} is opened with {self.pooling.value} pooling: it is a "
                "bi-encoder, not a cross-encoder. Rerank with a cross-encoder GGUF (rank "
                "pooling), or compare embeddings with cosine similarity."
            )

    def _require_embedder(self) -> None:
        if self.pooling is Pooling.RANK:
            raise PoolingError(
                f"{self.model_path.name} is a cross-encoder (rank pooling): it scores "
                "query–document pairs with rerank() and has no embeddings; open it with "
                "another pooling only if you know its hidden states are meaningful"
            )

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        normalize: bool = True,
        truncate: bool = True,
    ) -> Any:
        """Return a float32 (len(texts), n_embd) array; pooling NONE gives a list of matrices."""
        options = EmbedOptions(normalize=normalize, truncate=truncate)
        return self._embed_many(
            check_texts(texts), options, check_batch_size(batch_size), show_progress
        )

    def _embed_many(
        self,
        texts: list[str],
        options: EmbedOptions,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        self._require_embedder()
        self._context_or_raise()
        if not texts:
            if self.pooling is Pooling.NONE:
                return []
            return np.empty((0, self.n_embd), dtype=np.float32)
        sequences = self._prepare(texts, options)
        result = self._run(sequences, self.n_embd, batch_size, show_progress)
        if options.normalize:
            if isinstance(result, list):
                return [l2_normalize(matrix) for matrix in result]
            return l2_normalize(result)
        return result

    @overload
    def embed_with_options(self, text_or_texts: str, options: EmbedOptions) -> FloatArray: ...

    @overload
    def embed_with_options(self, text_or_texts: Sequence[str], options: EmbedOptions) -> Any: ...

    def embed_with_options(self, text_or_texts: str | Sequence[str], options: EmbedOptions) -> Any:
        """Return embeddings with explicit options: 1-D for a string, 2-D for a list."""
        if isinstance(text_or_texts, str):
            return self._embed_many([text_or_texts], options)[0]
        return self._embed_many(check_texts(text_or_texts), options)

    # ----------------------------------------------------------------- rerank
    def _pair_tokens(self, query: TokenArray, document: str) -> tuple[TokenArray, int]:
        """Return a pair's tokens and the index where the document's segment starts.

        The tokens are ``[BOS] query [EOS] [SEP] document [EOS]``, as llama.cpp's server
        builds them (each marker only where the vocabulary asks for it).
        """
        vocab = self._model.vocab
        doc = self._model.tokenize(document, add_special=False)
        closing = vocab.eos if vocab.eos >= 0 else vocab.sep
        head = [vocab.bos] if vocab.add_bos else []
        middle = ([closing] if vocab.add_eos else []) + ([vocab.sep] if vocab.add_sep else [])
        tail = [closing] if vocab.add_eos else []
        room = self.n_ctx - len(head) - len(middle) - len(tail)
        if len(query) + len(doc) > room:
            # Too long: the query keeps at least half the room, the document gets the rest.
            keep = min(len(query), max(room // 2, room - len(doc)))
            query, doc = query[:keep], doc[: room - keep]
        parts = [head, query.tolist(), middle, doc.tolist(), tail]
        tokens = np.asarray([t for part in parts for t in part], dtype=np.int32)
        return tokens, len(head) + len(query) + len(middle)

    def _pairs(self, query: str, documents: list[str]) -> list[npt.NDArray[Any]]:
        model = self._model
        if model.rerank_template:
            templated = []
            for document in documents:
                text = model.rerank_template.replace("{query}", query).replace(
                    "{document}", document
                )
                # As llama.cpp's server: the template's markers are special tokens.
                tokens = model.tokenize(text, add_special=False, parse_special=True)
                templated.append(tokens[: self.n_ctx])
            return templated
        query_tokens = model.tokenize(query, add_special=False)
        pairs = [self._pair_tokens(query_tokens, d) for d in documents]
        if self._segments is None:
            return [tokens for tokens, _ in pairs]
        words, type_shift = self._segments
        inputs = []
        for tokens, start in pairs:
            matrix = words[tokens]  # fancy indexing: a fresh array
            matrix[start:] += type_shift  # the document is sentence B
            inputs.append(matrix)
        return inputs

    @overload
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: None = None,
        activation: str | Callable[[FloatArray], FloatArray] | None = None,
    ) -> FloatArray: ...

    @overload
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int,
        activation: str | Callable[[FloatArray], FloatArray] | None = None,
    ) -> list[RerankResult]: ...

    @overload
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        activation: str | Callable[[FloatArray], FloatArray] | None = None,
    ) -> FloatArray | list[RerankResult]: ...

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        activation: str | Callable[[FloatArray], FloatArray] | None = None,
    ) -> FloatArray | list[RerankResult]:
        """Return relevance scores of documents for a query, in input order.

        With ``top_n`` return the best ``top_n`` as sorted RerankResult(index, score, text).
        ``activation`` is None (raw logits), "sigmoid", or a function of the score array.
        """
        if not isinstance(query, str):
            raise TypeError(f"query is {type(query).__name__}, not str")
        docs = check_texts(documents)
        self._require_reranker()
        if top_n is not None and top_n < 0:
            raise ValueError("top_n must be non-negative")
        self._context_or_raise()
        if docs:
            raw = self._run(self._pairs(query, docs), self.n_cls_out)
            scores = np.asarray(raw, dtype=np.float32)[:, 0].copy()
        else:
            scores = np.empty(0, dtype=np.float32)
        if activation == "sigmoid":
            scores = sigmoid(scores)
        elif callable(activation):
            scores = np.asarray(activation(scores), dtype=np.float32)
        elif activation not in (None, "none"):
            raise ValueError(f"unknown activation {activation!r}; use None or 'sigmoid'")
        if top_n is None:
            return scores
        order = np.argsort(-scores, kind="stable")[:top_n]
        return [RerankResult(int(i), float(scores[i]), docs[i]) for i in order]

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Free the llama.cpp context and model; later calls raise ModelLoadError."""
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None
            self._model.close()

    def __getstate__(self) -> dict[str, Any]:
        # Reconstructible from its parameters: ship those, reopen on the other side.
        return {"params": self._params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        params = state["params"]
        self.__init__(params.model_path, params=params)  # type: ignore[misc]
