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
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._files import sample_file
from .._types import FloatArray, IdArray
from ..batch import BatchEmbedder
from ..embedder import Capabilities, ModelFacts
from ..engine.inputs import check_batch_size, check_texts, check_token_ids
from ..engine.pooling import check_dimensions, l2_normalize, truncate_dimensions
from ..outputs import ModelInput, Output, Want
from ._words import WordCache, encode_ids
from .folder import read_folder, unknown_id

if TYPE_CHECKING:
    from ..hub.spec import ModelSpec

__all__ = ["StaticModel", "mean_rows"]

DEFAULT_MAX_LENGTH = 512  # Model2Vec's default, so both truncate alike
_CHUNK = 8192  # texts tokenised and pooled at once
_PREPARE_CHUNK = 256  # texts tokenised at once for the server, which counts as it goes


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


class StaticModel(BatchEmbedder):
    """A static embedding model: ``StaticModel("folder")`` for ours or any Model2Vec model.

    An :class:`~llamaembed.embedder.Embedder`, so the index, the CLI, the server and the
    Ray path take it as they take ``Llama``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_length: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        spec_name: str | None = None,
    ) -> None:
        folder = Path(path)
        contents = read_folder(folder)
        self.folder = folder
        # What ``spec`` calls the model: a catalogue name (a hub snapshot's folder is named
        # by its commit), else the folder's own name.
        self._spec_name = spec_name
        self.config: dict[str, Any] = contents.config
        self._table = contents.table
        self._weights = contents.weights
        self._mapping = contents.mapping
        self._tokenizer = contents.tokenizer
        self._words = WordCache.for_tokenizer(self._tokenizer)
        vocab = self._tokenizer.get_vocab()
        self.n_vocab = len(vocab)
        self._unk_id = unknown_id(self._tokenizer)
        median = int(np.median([len(token) for token in vocab])) if vocab else 1
        self._chars_per_token = max(median, 1)
        configured = self.config.get("max_length", DEFAULT_MAX_LENGTH)
        self.max_length: int | None = max_length if max_length is not None else configured
        self._query_prefix = query_prefix
        self._document_prefix = document_prefix
        self.n_embd = int(self._table.shape[1])
        self.name = str(self.config.get("model_name") or folder.name)
        digest = hashlib.sha256(b"static-v1")
        sample_file(digest, contents.tensors_path)
        digest.update(contents.tokenizer_path.read_bytes())
        self.fingerprint = digest.hexdigest()[:32]

    # ----------------------------------------------------------------- description
    @property
    def spec(self) -> ModelSpec:
        """Return the description that reopens this model: its folder and prefixes."""
        from ..hub.spec import ModelSpec

        return ModelSpec(
            name=self._spec_name or self.folder.resolve().name,
            params=None,
            static_folder=str(self.folder.resolve()),
            query_prefix=self._query_prefix,
            document_prefix=self._document_prefix,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Return dense only: one vector per text, no pair scores."""
        return Capabilities()

    @property
    def facts(self) -> ModelFacts:
        """Return ``static`` and mean pooling, the table's type and the folder's size."""
        size = sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())
        return ModelFacts("static", "mean", str(self._table.dtype).upper(), size)

    @property
    def query_prefix(self) -> str:
        """Return the prefix ``embed_query`` puts before a query."""
        return self._query_prefix

    @property
    def document_prefix(self) -> str:
        """Return the prefix ``embed_documents`` puts before a document."""
        return self._document_prefix

    # ----------------------------------------------------------------- properties
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

    def detokenize(self, tokens: npt.ArrayLike, *, special: bool = False) -> str:
        """Return the text of token ids, through the tokenizer's decoder."""
        ids = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_vocab):
            raise ValueError(f"token ids must be in [0, {self.n_vocab})")
        return str(self._tokenizer.decode(ids.tolist(), skip_special_tokens=not special))

    # ----------------------------------------------------------------- prepared inputs
    # The server's batcher runs prepared inputs of many requests together, as for Llama.
    def prepare_texts(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        on_truncate: Callable[[int], None] | None = None,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[IdArray]:
        """Return each text's token ids, as ``forward`` takes them.

        ``on_tokens(n)`` hears each text's tokens, a chunk of texts at a time.
        """
        checked = check_texts(texts)
        limit = self.max_length if truncate else None
        prepared: list[IdArray] = []
        # In chunks, so that on_tokens can stop a large request early (the tokenizer
        # takes a whole list in one call).
        for start in range(0, len(checked), _PREPARE_CHUNK):
            chunk = checked[start : start + _PREPARE_CHUNK]
            flat, lengths = self._encode(chunk, limit, on_truncate)
            prepared += np.split(flat, np.cumsum(lengths)[:-1])
            if on_tokens is not None:
                for length in lengths.tolist():
                    on_tokens(length)
        return prepared

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

    def forward(self, inputs: Sequence[ModelInput]) -> list[Output]:
        """Return the unnormalised mean vector of each prepared input, in input order.

        A static model has only that output: asking for others raises MissingHeadError.
        """
        for item in inputs:
            if item.want & ~Want.POOLED:
                self._no_heads()
        rows = self._mean_rows([item.tokens for item in inputs])
        return [Output(pooled=row) for row in rows]

    def _mean_rows(self, sequences: list[IdArray]) -> FloatArray:
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
        dimensions: int | None = None,
    ) -> FloatArray:
        """Return a float32 (len(texts), n_embd) array, unit length unless normalize=False.

        ``dimensions`` keeps the first N columns, re-normalised.
        """
        dims = check_dimensions(dimensions, self.n_embd)
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
        return truncate_dimensions(out, dims, normalize=normalize)
