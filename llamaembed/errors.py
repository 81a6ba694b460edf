"""The exceptions llamaembed raises.

Every error of ours derives from :class:`LlamaEmbedError`, so ``except LlamaEmbedError``
catches them all. Errors coming from llama.cpp, hnswlib or the file system are caught at
the boundary and re-raised as one of these, with what to do next in the message::

    LlamaEmbedError
    ├── ModelLoadError              the GGUF file is missing, not GGUF, corrupt or unsupported
    ├── EmbeddingsDisabledError     the model was loaded without embedding mode
    ├── PoolingError                the pooling does not fit the model or the call
    │   ├── RerankNotSupportedError rerank() on a bi-encoder (no classification head)
    │   └── MissingHeadError        sparse or ColBERT output of a model without that head
    ├── InputTooLongError           a text is longer than the context and truncate=False
    ├── EmptyInputError             a text gives no tokens at all (a decoder without BOS)
    ├── InvalidTokenError           a token id outside the model's vocabulary
    ├── InferenceError              llama.cpp failed while encoding a batch
    ├── ConversionError             `convert` could not turn a Hugging Face folder into GGUF
    ├── QuantizationError           `quantize` failed or got an unknown type
    ├── QueueFullError              the server's batching queue has no room (HTTP 429)
    ├── RequestTooLargeError        one request holds more tokens than the server takes (413)
    ├── SearchIndexError            an index folder is missing, truncated or tampered with
    │   ├── IndexModelMismatchError the index (or embedded Parquet) is from another model
    │   ├── IndexLockedError        another writer holds the index folder past the wait
    │   └── KeywordsError           a keyword scheme the store or the model cannot use
    ├── DatasetError                a dataset to embed or an embedded Parquet file is unusable
    ├── AgentRequestError           an MCP tool call with a bad argument or a path outside the roots
    └── RegistryError               an unknown catalogue name, a bad models.toml, a failed pull
        └── ModelNotCachedError     the model is not cached and the hub may not be asked

Every error pickles with its fields (``index``, ``retry_after``, …), so one raised in a Ray
actor or a worker process reaches the caller as itself. ``IndexError_`` is the old name of
``SearchIndexError``, kept for one release.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentRequestError",
    "ConversionError",
    "DatasetError",
    "EmbeddingsDisabledError",
    "EmptyInputError",
    "IndexError_",
    "IndexLockedError",
    "IndexModelMismatchError",
    "InferenceError",
    "InputTooLongError",
    "InvalidTokenError",
    "KeywordsError",
    "LlamaEmbedError",
    "MissingHeadError",
    "ModelLoadError",
    "ModelNotCachedError",
    "PoolingError",
    "QuantizationError",
    "QueueFullError",
    "RegistryError",
    "RequestTooLargeError",
    "RerankNotSupportedError",
    "SearchIndexError",
]


class LlamaEmbedError(Exception):
    """Base class of every error llamaembed raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles only its args; the keyword-only fields of the subclasses would
        # be lost (or make unpickling fail), so rebuild from the args and the fields.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(kind: type[LlamaEmbedError], args: tuple[Any, ...], fields: dict[str, Any]) -> Any:
    """Return an error of ``kind`` with these args and fields, without calling its __init__."""
    error = kind.__new__(kind, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(fields)
    return error


class ModelLoadError(LlamaEmbedError):
    """The model file could not be loaded (missing, not GGUF, corrupt, unsupported)."""


class EmbeddingsDisabledError(LlamaEmbedError):
    """The model was opened with embeddings turned off."""


class PoolingError(LlamaEmbedError):
    """The pooling type does not fit the model or the requested operation."""


class RerankNotSupportedError(PoolingError):
    """``rerank`` was called on a model without a classification (rank) head."""


class MissingHeadError(PoolingError):
    """Sparse or ColBERT output was asked of a model without that head (bge-m3's heads)."""


class InputTooLongError(LlamaEmbedError):
    """A text has more tokens than the model's context and truncation is off."""

    def __init__(self, message: str, *, index: int, n_tokens: int, limit: int) -> None:
        super().__init__(message)
        self.index = index
        self.n_tokens = n_tokens
        self.limit = limit


class EmptyInputError(LlamaEmbedError, ValueError):
    """A text produced no tokens, so there is nothing to embed."""


class InvalidTokenError(LlamaEmbedError, ValueError):
    """A token id given as input is outside the model's vocabulary."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message)
        self.index = index


class QueueFullError(LlamaEmbedError):
    """The batching queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTooLargeError(LlamaEmbedError, ValueError):
    """One request holds more tokens than a server takes (``--max-request-tokens``)."""

    def __init__(self, message: str, *, n_tokens: int, limit: int) -> None:
        super().__init__(message)
        self.n_tokens = n_tokens  # counted so far: counting stops past the limit
        self.limit = limit


class InferenceError(LlamaEmbedError):
    """llama.cpp returned an error while encoding a batch."""


class ConversionError(LlamaEmbedError):
    """A Hugging Face model could not be converted to GGUF."""


class QuantizationError(LlamaEmbedError):
    """Quantisation failed or the requested type is unknown."""


class SearchIndexError(LlamaEmbedError):
    """An index on disk is missing, truncated, tampered with or of another format."""


IndexError_ = SearchIndexError  # the old name, kept for one release


class IndexModelMismatchError(SearchIndexError):
    """An index (or embedded Parquet) is used with a model other than the one that made it."""


class IndexLockedError(SearchIndexError):
    """Another writer held an index folder's lock past the wait allowed; names the holder."""


class KeywordsError(SearchIndexError, ValueError):
    """A keyword scheme that is unknown, not supported by the store, or needs another model."""


class DatasetError(LlamaEmbedError, ValueError):
    """A dataset to embed, or an embedded Parquet file, is missing, malformed or not ours."""


class RegistryError(LlamaEmbedError):
    """The model catalogue could not resolve, validate or download a model."""


class ModelNotCachedError(RegistryError):
    """The model is not in the local cache and downloads are not allowed."""


class AgentRequestError(LlamaEmbedError, ValueError):
    """An MCP tool call the server refuses: a bad argument, a path outside its roots."""
