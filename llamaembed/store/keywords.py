"""The keyword side of hybrid search: one scheme object per way of matching words.

A :class:`KeywordScheme` says what a store keeps for a document and asks for a query:

- ``bm25``: the store's own full-text engine (SQLite FTS5, Milvus's BM25 function) over
  the stored text; queries match their words but stopwords (``every_word``);
- ``sparse``: a model's learned lexical weights (bge-m3's sparse head), document and query
  alike, scored by their inner product;
- ``words``: hashed words weighted as BM25 saturates them (``word_weights``), a sparse
  vector any sparse-vector engine can score (Milvus before its BM25 function);
- ``none``: no keyword side.

``choose_scheme`` is the one place a scheme is chosen for a model and a store (each store
declares the names it supports), with one error type, ``KeywordsError``. Pure functions
besides the query encoder a scheme is given.
"""

from __future__ import annotations

import abc
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..code.identifiers import code_words, path_words
from ..embedder import Embedder
from ..errors import KeywordsError
from ..outputs import Output, SparseVector, Want

__all__ = [
    "SCHEMES",
    "STOPWORDS",
    "KeywordMatches",
    "KeywordScheme",
    "KeywordSide",
    "QueryEncoder",
    "choose_scheme",
    "every_word",
    "fts_query",
    "keyword_text",
    "salient_words",
    "word_weights",
]

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "can",
        "should",
        "would",
    ]
)


def salient_words(text: str, count_tokens: Callable[[str], int] | None = None) -> set[str]:
    """Return the lower-cased words of a query that keyword search should match.

    Ordinary words are the embedding's strength; letting BM25 match them ("need",
    "should") only adds noise to the fusion. Words the model's vocabulary lacks (split
    into several pieces: ``count_tokens(word) > 1``: part numbers, names, identifiers)
    or holding digits are where exact matching helps. Without a token counter,
    every word but stopwords and words of one or two letters counts.
    """
    salient = set()
    for word in {w.lower() for w in _WORD.findall(text)}:
        if any(ch.isdigit() for ch in word):
            salient.add(word)
        elif count_tokens is not None:
            if count_tokens(word) > 1:
                salient.add(word)
        elif word not in STOPWORDS and len(word) > 2:
            salient.add(word)
    return salient


def every_word(text: str) -> set[str]:
    """Return a query's keyword words: identifiers whole and split (``code_words``), lower-cased.

    Stopwords and words of one or two letters are left out. ``getUserName`` asks for
    getusername, get, user and name, which is how documents are indexed (``keyword_text``).
    """
    return {w for w in code_words(text) if len(w) > 2} - STOPWORDS


def keyword_text(text: str, metadata: Mapping[str, Any] | None = None) -> str:
    """Return what the full-text side indexes for a document: its words and its file's.

    The text's ``code_words`` (each identifier whole and split), then the words of the
    file path in ``metadata["source"]`` and of its symbol path, so a question naming
    "the api router" finds ``APIRouter`` and a file called ``router.py``.
    """
    words = code_words(text)
    if metadata:
        source = metadata.get("source")
        if isinstance(source, str):  # the name and two folders: the rest says little
            words += path_words("/".join(source.replace("\\", "/").split("/")[-3:]))
        symbol = metadata.get("symbol")
        if isinstance(symbol, str):
            words += code_words(symbol)
    return " ".join(words)


def fts_query(words: Iterable[str]) -> str:
    """Return an SQLite FTS5 query matching any of the words (each quoted, so safe)."""
    return " OR ".join(f'"{w}"' for w in sorted(set(words)))


def word_weights(text: str, *, query: bool) -> SparseVector:
    """Return a text's words as a sparse vector (hashed word -> weight) for ``"words"``.

    Documents weigh each word by BM25's saturated term frequency ``tf * 2.2 / (tf + 1.2)``;
    queries weigh each distinct word 1, so the inner product sums the query words' weights
    in the document. Stopwords and one-letter words are left out. Words hash by CRC-32,
    stable across runs and machines.
    """
    counts = Counter(w for w in code_words(text) if len(w) > 1 and w not in STOPWORDS)
    ids = [zlib.crc32(w.encode("utf-8")) for w in counts]
    weights = [1.0 if query else n * 2.2 / (n + 1.2) for n in counts.values()]
    return SparseVector.from_pairs(ids, weights)


class QueryEncoder(Protocol):
    """What a scheme needs to turn a query into terms: token counts and the query's outputs."""

    @property
    def token_counter(self) -> Callable[[str], int] | None:
        """Return the model's token counter (None without a model)."""

    def query(self, text: str) -> Output:
        """Return the query's outputs (its sparse vector among them, if the store keeps one)."""


@dataclass(frozen=True)
class KeywordSide:
    """One keyword search a query makes, and what its matches add to their cosine.

    A match scoring ``s`` (BM25, or a sparse inner product) adds
    ``weight * s / (s + half)``: at most ``weight``, half of it at ``s = half``, so a
    weak match nudges a passage and no keyword score can outweigh a clear difference in
    meaning. ``search.fuse_candidates`` adds it up.
    """

    terms: Any  # a set of words (full text) or a SparseVector
    weight: float
    half: float

    def bonus(self, score: float) -> float:
        """Return what a match with this score adds to the passage's cosine."""
        return self.weight * score / (score + self.half) if score > 0 else 0.0


KeywordMatches = tuple[KeywordSide, list[tuple[Any, float]]]
"""One keyword search's side and its matches, (key, score) best first."""


class KeywordScheme(abc.ABC):
    """One way of matching words: what a document keeps and what a query asks."""

    name: ClassVar[str]
    wants: ClassVar[Want] = Want(0)  # model outputs a document's terms need
    # One side's weight and half-score (KeywordSide); measured in search_quality.py
    weight: ClassVar[float] = 0.05
    half: ClassVar[float] = 5.0

    def check(self, embedder: Embedder | None) -> None:  # noqa: B027 (most need nothing)
        """Raise KeywordsError when the scheme cannot work with this model."""

    @abc.abstractmethod
    def query_terms(self, text: str, encoder: QueryEncoder) -> Any:
        """Return what a query matches with (None: nothing to match)."""

    def document_terms(self, text: str, sparse: SparseVector | None) -> SparseVector | None:
        """Return a document's sparse terms, for schemes that store them (else None)."""
        return None

    def query_sides(self, text: str, encoder: QueryEncoder) -> list[KeywordSide]:
        """Return the keyword searches a query makes (none: hybrid is vector search)."""
        terms = self.query_terms(text, encoder)
        return [KeywordSide(terms, self.weight, self.half)] if terms else []

    def __repr__(self) -> str:
        return f"<keywords {self.name}>"


class BM25(KeywordScheme):
    """The store's full-text engine over the stored text, asked with every query word.

    Stopwords are left out (``every_word``); the engine's BM25 score ``s`` adds
    ``0.04 * s / (s + 5)`` to the cosine, so a passage that holds the words a question
    names rises above its neighbours in meaning while plain-English words only nudge.
    ``benchmarks/search_quality.py`` measured these weights never to rank below vectors
    alone on its three sets, for MiniLM and the static tier; a second search with only the
    salient words (``salient_words``) ranked identifier questions higher but cost the
    README questions their first hit, so it is not asked.
    """

    name = "bm25"
    weight = 0.04

    def query_terms(self, text: str, encoder: QueryEncoder) -> set[str]:
        """Return the query's words but stopwords (``every_word``)."""
        return every_word(text)


class LearnedSparse(KeywordScheme):
    """A model's lexical weights (bge-m3's sparse head), for documents and queries."""

    name = "sparse"
    wants = Want.SPARSE
    weight = 0.075  # lexical matching scores run 0-1: measured in m3_quality.py
    half = 0.3

    def check(self, embedder: Embedder | None) -> None:
        """Refuse a model without lexical weights."""
        if embedder is not None and not embedder.capabilities.sparse:
            raise KeywordsError(
                f"keywords='sparse' needs a model with lexical weights (bge-m3's sparse "
                f"head); {embedder!r} has none: use keywords='bm25'"
            )

    def query_terms(self, text: str, encoder: QueryEncoder) -> SparseVector | None:
        """Return the query's lexical weights."""
        weights = encoder.query(text).sparse
        return weights if weights is not None and len(weights) else None

    def document_terms(self, text: str, sparse: SparseVector | None) -> SparseVector | None:
        """Return the document's lexical weights, as the encoder computed them."""
        return sparse


class HashedWords(KeywordScheme):
    """Hashed words weighted as BM25 saturates them (``word_weights``)."""

    name = "words"
    half = 2.0  # a word's saturated count is at most 2.2 (no measured set uses this scheme)

    def query_terms(self, text: str, encoder: QueryEncoder) -> SparseVector | None:
        """Return the query's distinct words, each weighing 1."""
        weights = word_weights(text, query=True)
        return weights if len(weights) else None

    def document_terms(self, text: str, sparse: SparseVector | None) -> SparseVector | None:
        """Return the document's words with their saturated counts."""
        return word_weights(text, query=False)


class NoKeywords(KeywordScheme):
    """No keyword side: hybrid search is vector search."""

    name = "none"

    def query_terms(self, text: str, encoder: QueryEncoder) -> None:
        """Return None: there is nothing to match."""
        return None


SCHEMES: dict[str, KeywordScheme] = {
    s.name: s for s in (BM25(), LearnedSparse(), HashedWords(), NoKeywords())
}


def choose_scheme(
    embedder: Embedder | None, name: str | None, supported: Iterable[str]
) -> KeywordScheme:
    """Return the scheme a store uses, or raise KeywordsError.

    ``name``, else learned sparse for a model with lexical weights, else BM25; a scheme the
    store does not support (``supported``) or the model cannot feed is refused.
    """
    names = tuple(supported)
    if name is None:
        capable = embedder is not None and embedder.capabilities.sparse
        name = "sparse" if capable and "sparse" in names else "bm25"
    scheme = SCHEMES.get(name)
    if scheme is None or name not in names:
        raise KeywordsError(f"keywords must be one of {', '.join(names)}, not {name!r}")
    scheme.check(embedder)
    return scheme
