"""``Llama``: a GGUF model in embedding mode — embeddings, token vectors and rerank scores."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from .._types import FloatArray, TokenArray
from ..batch import BatchEmbedder
from ..embedder import Capabilities, ModelFacts
from ..errors import (
    EmbeddingsDisabledError,
    ModelLoadError,
    PoolingError,
    RerankNotSupportedError,
)
from ..heads import M3Heads, load_heads
from ..outputs import Want
from ..params import EmbedOptions, LlamaParams, Pooling
from ._prepared import PreparedInputs
from .contexts import ContextPool, run_batches
from .hardware import choose_contexts
from .inputs import check_batch_size, check_texts, tokenize_texts
from .layout import PROBABILITY_RERANKERS, read_layout
from .m3 import require_heads
from .pairs import (
    RerankResult,
    Segments,
    build_pairs,
    decoder_rank_head,
    rank_scores,
    segment_tables,
)
from .pooling import check_dimensions, l2_normalize, truncate_dimensions

if TYPE_CHECKING:
    from ..hub.spec import ModelSpec

__all__ = ["FULL_GRAPH_ENV", "Llama", "RerankResult"]

# "1" runs a decoder's whole graph, projection onto the vocabulary included (for A/B runs)
FULL_GRAPH_ENV = "LLAMAEMBED_FULL_GRAPH"


class Llama(PreparedInputs, BatchEmbedder):
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
        self._pool: ContextPool | None = None
        self._token_pool: ContextPool | None = None
        from . import _handles, _native

        if params.verbose:
            native_logger = logging.getLogger(_native.__name__)
            native_logger.setLevel(logging.DEBUG)
            if not native_logger.handlers:
                native_logger.addHandler(logging.StreamHandler())
        n_gpu_layers = params.n_gpu_layers
        if n_gpu_layers and not _native.supports_gpu_offload():
            from .system import warn_no_gpu_once

            warn_no_gpu_once()
            n_gpu_layers = 0
        self.n_gpu_layers = n_gpu_layers
        self._model = _handles.NativeModel(
            params.model_path, n_gpu_layers=n_gpu_layers, main_gpu=params.main_gpu
        )
        try:
            self._setup()
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

    def _setup(self) -> None:
        params = self._params
        model = self._model
        layout = read_layout(model, params, warn_pooling=self._warn_pooling)
        self._layout = layout
        self.architecture = layout.architecture
        self._is_decoder = layout.is_decoder
        self.gguf_pooling: Pooling | None = layout.gguf_pooling
        self._has_rank_head = layout.has_rank_head
        self.pooling: Pooling = layout.pooling
        self.n_ctx = layout.n_ctx
        self.n_embd = model.n_embd
        self.n_cls_out = model.n_cls_out
        self.metadata: dict[str, str] = {
            k: v for k, v in model.metadata.items() if not k.startswith("tokenizer.ggml.token")
        }
        # bge-m3's sparse and ColBERT heads, from the heads file beside the GGUF.
        self.heads: M3Heads | None = load_heads(model.path, model.n_embd)
        self.fingerprint = layout.fingerprint
        if self.heads is not None:
            self.fingerprint = f"{layout.fingerprint}+{self.heads.fingerprint[:8]}"
        self._budget = layout.budget
        self._n_seq_max = layout.n_seq_max
        # llama.cpp adds token type 0 to every token, so a BERT cross-encoder would read
        # the document as "sentence A"; engine.pairs feeds it input embeddings instead.
        self._segments: Segments | None = None
        if (
            params.embeddings  # rerank needs embedding mode; skip the 47 MB table otherwise
            and layout.pooling is Pooling.RANK
            and layout.architecture == "bert"
            and model.metadata.get("tokenizer.ggml.token_type_count") == "2"
            and model.rerank_template is None
        ):
            self._segments = segment_tables(model.path)
        if params.embeddings:
            self._pool = self._new_pool(layout.pooling)
            self._pool.first()  # a context llama.cpp refuses fails here, not mid-call

    def _new_pool(self, pooling: Pooling) -> ContextPool:
        from . import _handles

        params, layout = self._params, self._layout
        # A decoder's last-token vectors are read at its final norm; the projection onto
        # the vocabulary after it is skipped (engine._handles.StopAt). On a GPU the node's
        # rows are not in host memory, so the graph runs whole there.
        stop_at, head = None, None
        if layout.is_decoder and not self.n_gpu_layers and os.environ.get(FULL_GRAPH_ENV) != "1":
            if pooling is Pooling.LAST:
                stop_at = "result_norm"
            elif pooling is Pooling.RANK:  # a reranker's head is applied to the kept rows
                head = decoder_rank_head(
                    self._model.path, self._model.n_embd, layout.architecture, self._model.metadata
                )
                stop_at = "result_norm" if head is not None else None

        def open_context() -> Any:
            return _handles.NativeContext(
                self._model,
                n_ctx=layout.n_ctx,
                n_ubatch=layout.n_ubatch,
                n_seq_max=layout.n_seq_max,
                n_threads=params.threads,
                pooling_code=pooling.llama_code,
                embeddings=True,
                flash_attn=params.flash_attn,
                stop_at=stop_at,
                head=head,
            )

        size = params.n_contexts or choose_contexts(params.threads, gpu=bool(self.n_gpu_layers))
        return ContextPool(open_context, threads=params.threads, size=size)

    @property
    def projection_skips(self) -> int:
        """Return how many micro-batches skipped a decoder's projection onto its vocabulary."""
        return self._pool.stops if self._pool is not None else 0

    @property
    def contexts_open(self) -> int:
        """Return how many llama.cpp contexts are open (a large batch opens the second)."""
        return sum(p.opened for p in (self._pool, self._token_pool) if p is not None)

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
        """Return what the pooling and heads allow: vectors, token vectors, sparse, rank."""
        heads = self.heads if self.pooling is not Pooling.RANK else None
        return Capabilities(
            dense=self.pooling not in (Pooling.RANK, Pooling.NONE),
            rerank=self.pooling is Pooling.RANK,
            sparse=heads is not None and heads.sparse_weight is not None,
            multi_vector=self.pooling is Pooling.NONE,
            colbert=bool(heads and heads.colbert_dim),
            token_states=self.pooling is not Pooling.RANK,
            rerank_probabilities=self.pooling is Pooling.RANK
            and self.architecture in PROBABILITY_RERANKERS,
        )

    @property
    def facts(self) -> ModelFacts:
        """Return the GGUF's architecture, pooling, weight type and file size."""
        code = self.metadata.get("general.file_type")
        weight_type = ""
        if code is not None and str(code).isdigit():
            from gguf import LlamaFileType

            with contextlib.suppress(ValueError):
                weight_type = LlamaFileType(int(code)).name.split("_", 1)[-1]
        size = self.model_path.stat().st_size if self.model_path.exists() else 0
        return ModelFacts(self.architecture, self.pooling.value, weight_type, size)

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

    # ----------------------------------------------------------------- batching
    def _context_or_raise(self) -> Any:
        if not self._params.embeddings:
            raise EmbeddingsDisabledError(
                "this model was opened with embeddings=False; open it with embeddings=True"
            )
        if self._pool is None:
            raise ModelLoadError("the model has been closed")
        return self._pool

    def _run(
        self,
        sequences: list[npt.NDArray[Any]],
        width: int,
        batch_size: int | None = None,
        show_progress: bool = False,
        *,
        token_level: bool | None = None,
    ) -> FloatArray | list[FloatArray]:
        """Run sequences: pooled rows, or token rows (pooling none, or ``token_level``)."""
        max_seqs = min(self._n_seq_max, batch_size or self._n_seq_max)
        native = self.pooling is Pooling.NONE
        with self._lock:
            pool = self._context_or_raise()
            if token_level and not native:
                pool = self._token_contexts()
            return run_batches(
                pool,
                sequences,
                width,
                budget=self._budget,
                max_seqs=max_seqs,
                token_level=native or bool(token_level),
                show_progress=show_progress,
            )

    def _token_contexts(self) -> ContextPool:
        # Contexts with pooling none, opened on first use (bge-m3's token outputs).
        if self._token_pool is None:
            self._token_pool = self._new_pool(Pooling.NONE)
        return self._token_pool

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
        dimensions: int | None = None,
    ) -> Any:
        """Return a float32 (len(texts), n_embd) array; pooling NONE gives a list of matrices.

        ``dimensions`` keeps the first N columns, re-normalised (Matryoshka models).
        """
        options = EmbedOptions(normalize=normalize, truncate=truncate)
        dims = check_dimensions(dimensions, self.n_embd)
        result = self._embed_many(
            check_texts(texts), options, check_batch_size(batch_size), show_progress
        )
        if dims is None:
            return result
        if isinstance(result, list):
            return [truncate_dimensions(m, dims, normalize=normalize) for m in result]
        return truncate_dimensions(result, dims, normalize=normalize)

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
        sequences = tokenize_texts(
            self._model, texts, options, self.n_ctx, end_token=self._layout.end_token
        )
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

    # ----------------------------------------------------------------- token outputs
    def _heads_for(self, want: Want) -> M3Heads | None:
        """Return the heads ``want`` needs (MissingHeadError names a missing one), or None."""
        sparse, colbert = bool(want & Want.SPARSE), bool(want & Want.COLBERT)
        if not sparse and not colbert:
            return None
        return require_heads(self.heads, self.model_path, sparse=sparse, colbert=colbert)

    def forward_tokens(self, sequences: list[TokenArray]) -> list[FloatArray]:
        """Return the encoder's raw (n_tokens, n_embd) states of each prepared input."""
        self._require_embedder()
        if not sequences:
            return []
        states = self._run(sequences, self.n_embd, token_level=True)
        assert isinstance(states, list)
        return states

    # ----------------------------------------------------------------- rerank
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
        ``activation`` is None (the model's raw scores), "sigmoid" (probabilities), or a
        function of the score array. Qwen3-Reranker's raw scores already are probabilities
        (P("yes") after its rerank template; ``capabilities.rerank_probabilities``), which
        "sigmoid" leaves as they are.
        """
        if not isinstance(query, str):
            raise TypeError(f"query is {type(query).__name__}, not str")
        docs = check_texts(documents)
        self._require_reranker()
        if top_n is not None and top_n < 0:
            raise ValueError("top_n must be non-negative")
        self._context_or_raise()
        if docs:
            pairs = build_pairs(self._model, query, docs, self.n_ctx, self._segments)
            raw = self._run(pairs, self.n_cls_out)
            scores = np.asarray(raw, dtype=np.float32)[:, 0].copy()
        else:
            scores = np.empty(0, dtype=np.float32)
        if activation == "sigmoid" and self.capabilities.rerank_probabilities:
            activation = None
        return rank_scores(scores, docs, top_n, activation)

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Free the llama.cpp context and model; later calls raise ModelLoadError."""
        with self._lock:
            for pool in (self._pool, self._token_pool):
                if pool is not None:
                    pool.close()
            self._pool = self._token_pool = None
            self._model.close()

    def __getstate__(self) -> dict[str, Any]:
        # Reconstructible from its parameters: ship those, reopen on the other side.
        return {"params": self._params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        params = state["params"]
        self.__init__(params.model_path, params=params)  # type: ignore[misc]
