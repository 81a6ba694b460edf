"""StaticModel: a Model2Vec folder (one vector per token) embedding texts with numpy.

A text's vector is the mean of its tokens' rows, tokens coming from the folder's
``tokenizer.json`` through the ``tokenizers`` library's batch encoder. The rules follow
Model2Vec's own ``StaticModel.encode`` so that both give the same vectors for the same
folder: no special tokens, unknown tokens dropped, at most ``max_length`` tokens (the
string is first cut to ``max_length`` times the median token length), zeros for a text
with no known token.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._files import sample_file
from ..engine.inputs import check_batch_size, check_texts, check_token_ids
from ..engine.pooling import l2_normalize
from ..errors import ModelLoadError, RerankNotSupportedError
from ._words import WordCache, encode_ids

__all__ = ["StaticModel", "find_layout", "is_static_folder", "mean_rows"]

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

DEFAULT_MAX_LENGTH = 512  # Model2Vec's default, so both truncate alike
_CHUNK = 8192  # texts tokenised and pooled at once

# (config, tensors, tokenizer, name of the vector table): Model2Vec's own layout, then
# the two sentence-transformers writes (Model2Vec's loader accepts the same three).
_LAYOUTS = (
    ("config.json", "model.safetensors", "tokenizer.json", "embeddings"),
    (
        "config_sentence_transformers.json",
        "model.safetensors",
        "tokenizer.json",
        "embedding.weight",
    ),
    (
        "config_sentence_transformers.json",
        "0_StaticEmbedding/model.safetensors",
        "0_StaticEmbedding/tokenizer.json",
        "embedding.weight",
    ),
)


def find_layout(folder: Path) -> tuple[Path, Path, Path, str] | None:
    """Return (config, tensors, tokenizer, table name) of a static-model folder, or None."""
    for config, tensors, tokenizer, table in _LAYOUTS:
        paths = (folder / config, folder / tensors, folder / tokenizer)
        if all(p.is_file() for p in paths):
            return paths[0], paths[1], paths[2], table
    return None


def is_static_folder(path: str | os.PathLike[str]) -> bool:
    """Return True when ``path`` is a folder holding a Model2Vec-style static model."""
    folder = Path(path)
    return folder.is_dir() and find_layout(folder) is not None


def mean_rows(
    table: FloatArray,
    flat_ids: IdArray,
    lengths: npt.NDArray[np.int64],
    weights: npt.NDArray[Any] | None = None,
    mapping: npt.NDArray[Any] | None = None,
) -> FloatArray:
    """Return the float32 mean of ``table`` rows per segment of ``flat_ids`` (zeros if empty).

    ``flat_ids`` holds every text's token ids back to back, ``lengths`` how many belong to
    each text. ``mapping`` sends a token id to its row and ``weights`` scales each token
    (Model2Vec's vocabulary-quantised models use both). The sum is a sparse (texts x
    vocabulary) matrix times the table: no (tokens x dim) block is ever gathered.
    """
    from scipy.sparse import csr_matrix

    n = len(lengths)
    if flat_ids.size == 0:
        return np.zeros((n, table.shape[1]), dtype=np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    columns = flat_ids if mapping is None else mapping[flat_ids]
    if weights is None:
        data = np.ones(len(flat_ids), dtype=np.float32)
    else:
        data = weights[flat_ids].astype(np.float32)
    counts = csr_matrix((data, columns, indptr), shape=(n, table.shape[0]))
    sums = np.asarray(counts @ table, dtype=np.float32)
    sums /= np.maximum(lengths, 1).astype(np.float32)[:, None]
    return sums


class StaticModel:
    """A static embedding model: ``StaticModel("folder")`` for ours or any Model2Vec model.

    It offers what ``Llama`` offers for embedding (``embed``, ``embed_texts``,
    ``embed_query``, ``embed_documents``, ``n_embd``, ``fingerprint``), so the index, the
    CLI and the server take either.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_length: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise ModelLoadError(f"{folder} is not a folder; a static model is a folder")
        layout = find_layout(folder)
        if layout is None:
            raise ModelLoadError(
                f"{folder} is not a static model folder: it needs config.json, "
                "model.safetensors and tokenizer.json (Model2Vec's layout); make one with "
                "`llamaembed distill`"
            )
        config_path, tensors_path, tokenizer_path, table_name = layout
        self.folder = folder
        self.config: dict[str, Any] = _read_json(config_path)
        tensors = _read_tensors(tensors_path)
        if table_name not in tensors:
            raise ModelLoadError(f"{tensors_path} has no {table_name!r} tensor")
        table = tensors[table_name]
        if table.ndim != 2 or table.shape[0] == 0 or not np.issubdtype(table.dtype, np.number):
            raise ModelLoadError(f"{tensors_path}: {table_name} is not a (tokens, dim) table")
        self._table = np.ascontiguousarray(table, dtype=np.float32)  # float16/int8 files too
        self._weights = tensors.get("weights")
        self._mapping = tensors.get("mapping")
        self._tokenizer = _read_tokenizer(tokenizer_path)
        self._words = WordCache.for_tokenizer(self._tokenizer)
        vocab = self._tokenizer.get_vocab()
        self.n_vocab = len(vocab)
        if self._mapping is None and table.shape[0] != self.n_vocab:
            raise ModelLoadError(
                f"{folder}: {table.shape[0]} vectors for {self.n_vocab} tokenizer tokens"
            )
        if self._mapping is not None and (
            self._mapping.ndim != 1
            or not np.issubdtype(self._mapping.dtype, np.integer)
            or len(self._mapping) != self.n_vocab
            or int(self._mapping.max(initial=0)) >= table.shape[0]
            or int(self._mapping.min(initial=0)) < 0
        ):
            raise ModelLoadError(f"{folder}: the token mapping does not fit the vectors")
        if self._weights is not None and (
            self._weights.ndim != 1 or len(self._weights) != self.n_vocab
        ):
            raise ModelLoadError(
                f"{folder}: {len(self._weights)} token weights for {self.n_vocab} tokens"
            )
        self._unk_id = _unknown_id(self._tokenizer)
        median = int(np.median([len(token) for token in vocab])) if vocab else 1
        self._chars_per_token = max(median, 1)
        configured = self.config.get("max_length", DEFAULT_MAX_LENGTH)
        self.max_length: int | None = max_length if max_length is not None else configured
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.n_embd = int(table.shape[1])
        self.name = str(self.config.get("model_name") or folder.name)
        digest = hashlib.sha256(b"static-v1")
        sample_file(digest, tensors_path)
        digest.update(tokenizer_path.read_bytes())
        self.fingerprint = digest.hexdigest()[:32]

    # ----------------------------------------------------------------- properties
    @property
    def is_reranker(self) -> bool:
        """Return False: a static model embeds, it does not score pairs."""
        return False

    @property
    def max_tokens(self) -> int:
        """Return the most tokens of a text that count (its ``max_length``)."""
        return self.max_length or 1 << 31

    def __repr__(self) -> str:
        return f"StaticModel({str(self.folder)!r}, n_embd={self.n_embd}, n_vocab={self.n_vocab})"

    # ----------------------------------------------------------------- tokens
    def _encode(
        self,
        texts: list[str],
        limit: int | None,
        on_truncate: Callable[[int], None] | None = None,
    ) -> tuple[IdArray, npt.NDArray[np.int64]]:
        """Return every text's token ids back to back and each text's count.

        ``on_truncate(n)`` hears how many texts had more than ``limit`` tokens.
        """
        if limit is not None:
            cut = limit * self._chars_per_token
            texts = [t[:cut] if len(t) > cut else t for t in texts]
        id_lists = encode_ids(self._tokenizer, self._words, texts)
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        chained = itertools.chain.from_iterable(id_lists)
        flat = np.fromiter(chained, dtype=np.int64, count=int(lengths.sum()))
        counts = lengths
        keep = None
        if limit is not None and int(counts.max(initial=0)) > limit:
            if on_truncate is not None:
                on_truncate(int((counts > limit).sum()))
            starts = np.cumsum(counts) - counts
            keep = np.arange(len(flat)) - np.repeat(starts, counts) < limit
        if self._unk_id is not None:
            known = flat != self._unk_id
            keep = known if keep is None else keep & known
        if keep is not None and not keep.all():
            owner = np.repeat(np.arange(len(counts)), counts)
            lengths = np.bincount(owner[keep], minlength=len(counts)).astype(np.int64)
            flat = flat[keep]
        return flat, lengths

    def tokenize(self, text: str, *, add_special: bool = False) -> IdArray:
        """Return the token ids that make up a text's vector (``add_special`` is ignored)."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        flat, _ = self._encode([text], None)
        return flat

    # ----------------------------------------------------------------- prepared inputs
    # The server's batcher runs prepared inputs of many requests together, as for Llama.
    def prepare_texts(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        on_truncate: Callable[[int], None] | None = None,
    ) -> list[IdArray]:
        """Return each text's token ids, as ``forward`` takes them."""
        checked = check_texts(texts)
        limit = self.max_length if truncate else None
        flat, lengths = self._encode(checked, limit, on_truncate)
        return np.split(flat, np.cumsum(lengths)[:-1]) if len(checked) else []

    def prepare_tokens(
        self, token_lists: Sequence[Sequence[int]], *, truncate: bool = True
    ) -> list[IdArray]:
        """Return token id lists checked against the vocabulary (the tokenizer's ids)."""
        prepared = []
        for i, ids in enumerate(token_lists):
            tokens = check_token_ids(ids, i, self.n_vocab)
            if truncate and self.max_length is not None:
                tokens = tokens[: self.max_length]
            prepared.append(tokens)
        return prepared

    def forward(self, sequences: list[IdArray]) -> FloatArray:
        """Return the unnormalised mean vector of each prepared input, in input order."""
        if not sequences:
            return np.empty((0, self.n_embd), dtype=np.float32)
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        flat = np.concatenate(sequences).astype(np.int64, copy=False)
        return mean_rows(self._table, flat, lengths, self._weights, self._mapping)

    # ----------------------------------------------------------------- embeddings
    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        normalize: bool = True,
        truncate: bool = True,
    ) -> FloatArray:
        """Return a float32 (len(texts), n_embd) array, unit length unless normalize=False."""
        checked = check_texts(texts)
        step = check_batch_size(batch_size) or _CHUNK
        limit = self.max_length if truncate else None
        out = np.empty((len(checked), self.n_embd), dtype=np.float32)
        starts = range(0, len(checked), step)
        if show_progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="embedding", unit="batch")
        for start in starts:
            flat, lengths = self._encode(checked[start : start + step], limit)
            rows = mean_rows(self._table, flat, lengths, self._weights, self._mapping)
            # per chunk: a whole-size temporary would cost page faults on large inputs
            out[start : start + step] = l2_normalize(rows) if normalize else rows
        return out

    def embed(self, text: str, *, normalize: bool = True, truncate: bool = True) -> FloatArray:
        """Return the float32 (n_embd,) vector of one text."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        return self.embed_texts([text], normalize=normalize, truncate=truncate)[0]

    def embed_query(self, text: str, *, prefix: str | None = None) -> FloatArray:
        """Return the normalised vector of a search query (with ``query_prefix``)."""
        chosen = self.query_prefix if prefix is None else prefix
        return self.embed(chosen + text, normalize=True)

    def embed_documents(
        self, texts: Sequence[str], *, prefix: str | None = None, show_progress: bool = False
    ) -> FloatArray:
        """Return normalised vectors of documents (with ``document_prefix``)."""
        chosen = self.document_prefix if prefix is None else prefix
        checked = check_texts(texts)
        prefixed = [chosen + t for t in checked] if chosen else checked
        return self.embed_texts(prefixed, show_progress=show_progress, normalize=True)

    def rerank(self, query: str, documents: Sequence[str], **_options: Any) -> Any:
        """Raise RerankNotSupportedError: a static model embeds, it does not score pairs."""
        raise RerankNotSupportedError(
            f"{self.folder.name} is a static embedding model; rerank with a cross-encoder "
            "GGUF, or compare embeddings with cosine similarity"
        )

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> list[IdArray]:
        """Raise RerankNotSupportedError, as ``rerank`` does."""
        return self.rerank(query, documents)

    async def aembed_texts(self, texts: Sequence[str], **kwargs: Any) -> FloatArray:
        """Return ``embed_texts`` run in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.embed_texts, texts, **kwargs)

    def close(self) -> None:
        """Do nothing: a static model holds no native resources (for symmetry with Llama)."""

    def __enter__(self) -> StaticModel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data


def _read_tensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise ModelLoadError(f"{path} is not a readable safetensors file: {exc}") from exc


def _read_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise ModelLoadError(f"{path} is not a Hugging Face tokenizer file: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()  # _encode truncates per call (``max_length`` or none)
    return tokenizer


def _unknown_id(tokenizer: Any) -> int | None:
    """Return the unknown token's id (WordPiece, BPE and WordLevel name it; Unigram numbers it)."""
    token = getattr(tokenizer.model, "unk_token", None)
    if token is not None:
        found = tokenizer.token_to_id(token)
        return None if found is None else int(found)
    unk_id = json.loads(tokenizer.to_str()).get("model", {}).get("unk_id")
    return None if unk_id is None else int(unk_id)
