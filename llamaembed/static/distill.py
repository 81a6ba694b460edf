"""Distil a static model from a GGUF embedding model, with llama.cpp as the teacher.

Model2Vec's recipe, in numpy and without torch: encode every normal token of the
teacher's vocabulary alone (``[CLS] token [SEP]``), mean-pool, reduce with PCA, and
scale each row by a SIF weight ``sif / (sif + p)``, ``p`` being the token's probability:
Zipf's law over the vocabulary order (Model2Vec's estimate) or, given a corpus, the
token's share of that corpus with add-one smoothing.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray
from ..errors import ConversionError
from ..params import LlamaParams, Pooling
from ._words import WordCache, encode_ids
from .folder import write_folder

__all__ = [
    "DISTILLER_VERSION",
    "TeacherVocabulary",
    "build_tokenizer",
    "build_unigram_tokenizer",
    "build_wordpiece_tokenizer",
    "corpus_probabilities",
    "distill",
    "pca",
    "sif_weights",
    "teacher_vocabulary",
    "zipf_probabilities",
]

# Raise when a change to the recipe changes the vectors: static models that the catalogue
# distils on first use (hub.static_models) are kept under this version, so they rebuild.
DISTILLER_VERSION = "1"

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED = 1, 2, 3, 4
_UNUSED = re.compile(r"\[unused\d+\]")
_CHUNK = 2048  # tokens per teacher call (one progress step)
# Real sentences that every check of the rebuilt tokenizer runs through both tokenizers.
_CHECK_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Rust is memory-safe; C is not. Or is it? 3.14159 and $9.99!",
    "café naïve résumé — «quotes» “curly” ‘single’",
    "snake_case camelCase kebab-case https://example.com/path?q=1",
    "東京は日本の首都です。 Москва — столица России. 서울",
    "tabs\tand\nnewlines\r\n  spaces, emoji 🦙 and ligatures ﬁne",
)


@dataclass(frozen=True)
class TeacherVocabulary:
    """The teacher tokens a static model keeps: their ids and their spellings.

    ``kind`` is ``"wordpiece"`` (BERT family: tokens spelled "##ing" for a continuation)
    or ``"unigram"`` (SentencePiece, XLM-RoBERTa family: pieces as stored, with scores and
    the normaliser's precompiled character map).
    """

    ids: npt.NDArray[np.int64]  # teacher token ids, ascending
    tokens: list[str]  # one per id
    unknown: str
    lowercase: bool
    kind: str = "wordpiece"
    scores: tuple[float, ...] = ()
    charsmap: bytes = b""


def teacher_vocabulary(path: str | os.PathLike[str]) -> TeacherVocabulary:
    """Return the tokens to distil from a GGUF's WordPiece or SentencePiece vocabulary.

    Kept: every normal (and user-defined) token in id order, plus the unknown and padding
    tokens; dropped: ``[unused…]`` and the other control tokens (``[CLS]``, ``<s>``, …).
    """
    from ..engine.gguf_check import scan

    meta = scan(path).metadata
    kind = meta.get("tokenizer.ggml.model")
    if kind not in ("bert", "t5"):
        raise ConversionError(
            f"{Path(path).name} has a {kind!r} tokenizer; distillation supports WordPiece "
            "(BERT family: MiniLM, BGE, e5, gte, nomic) and SentencePiece Unigram "
            "(XLM-RoBERTa family: bge-m3, multilingual-e5) teachers"
        )
    unigram = kind == "t5"
    raw = meta["tokenizer.ggml.tokens"]
    stored = meta.get("tokenizer.ggml.token_type")
    types = stored.values() if stored is not None else [_NORMAL] * len(raw)
    stored_scores = meta.get("tokenizer.ggml.scores")
    all_scores = list(stored_scores.values()) if stored_scores is not None else []
    if unigram and len(all_scores) != len(raw):
        raise ConversionError(f"{Path(path).name}: its SentencePiece vocabulary has no scores")
    unknown_id = int(meta.get("tokenizer.ggml.unknown_token_id", -1))
    padding_id = int(meta.get("tokenizer.ggml.padding_token_id", -1))
    if not 0 <= unknown_id < len(raw):
        raise ConversionError(f"{Path(path).name} names no unknown token")
    ids: list[int] = []
    tokens: list[str] = []
    for i, (data, kind_code) in enumerate(zip(raw, types, strict=True)):
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
        special = i in (unknown_id, padding_id)
        if not special and (kind_code not in (_NORMAL, _USER_DEFINED)):
            continue
        if unigram:
            word = text
        else:
            word = _wordpiece_form(text, special or kind_code in (_UNKNOWN, _CONTROL))
            if not special and _UNUSED.fullmatch(word):
                continue
        ids.append(i)
        tokens.append(word)
    if len(set(tokens)) != len(tokens):
        raise ConversionError(f"{Path(path).name}: its vocabulary maps two ids to one token")
    unknown = tokens[ids.index(unknown_id)]
    lowercase = meta.get("tokenizer.ggml.normalizer.lowercase", True) not in (False, "false")
    if not unigram:
        return TeacherVocabulary(np.asarray(ids, dtype=np.int64), tokens, unknown, lowercase)
    charsmap = meta.get("tokenizer.ggml.precompiled_charsmap")
    return TeacherVocabulary(
        np.asarray(ids, dtype=np.int64),
        tokens,
        unknown,
        lowercase=False,
        kind="unigram",
        scores=tuple(float(all_scores[i]) for i in ids),
        charsmap=bytes(charsmap.values()) if charsmap is not None else b"",
    )


def build_tokenizer(vocabulary: TeacherVocabulary) -> Any:
    """Return the Hugging Face tokenizer that splits text as the teacher's llama.cpp does."""
    if vocabulary.kind == "unigram":
        return build_unigram_tokenizer(
            vocabulary.tokens, vocabulary.scores, vocabulary.unknown, vocabulary.charsmap
        )
    return build_wordpiece_tokenizer(
        vocabulary.tokens, vocabulary.unknown, lowercase=vocabulary.lowercase
    )


def build_unigram_tokenizer(
    tokens: Sequence[str], scores: Sequence[float], unknown: str, charsmap: bytes
) -> Any:
    """Return a Hugging Face SentencePiece-Unigram tokenizer over ``tokens`` (id = position).

    Built as transformers builds XLM-RoBERTa's (the precompiled character map, runs of
    spaces collapsed, "▁" marking each word's start), and, as SentencePiece does, without
    leading or trailing spaces.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    model = models.Unigram(
        list(zip(tokens, scores, strict=True)), unk_id=tokens.index(unknown), byte_fallback=False
    )
    tokenizer = Tokenizer(model)
    steps: list[Any] = [normalizers.Precompiled(charsmap)] if charsmap else []
    # SentencePiece (and llama.cpp's port of it) drops leading and trailing spaces, which
    # transformers' XLM-R tokenizer keeps as a lone "▁"; follow the teacher.
    steps += [normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always"
    )
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return tokenizer


def _wordpiece_form(token: str, special: bool) -> str:
    """Undo llama.cpp's spelling: "▁word" starts a word, a bare piece continues one."""
    if token.startswith("\u2581"):
        return token[1:]
    if special or (token.startswith("[") and token.endswith("]")):
        return token  # llama.cpp's converter keeps bracketed tokens as they are
    return "##" + token


def build_wordpiece_tokenizer(tokens: Sequence[str], unknown: str, *, lowercase: bool) -> Any:
    """Return a Hugging Face BERT tokenizer over ``tokens`` (id = position), as llama.cpp's."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unknown, max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


# ----------------------------------------------------------------------------- numpy steps
def pca(matrix: npt.ArrayLike, dims: int | None) -> FloatArray:
    """Return rows projected on their ``dims`` main axes (mean-centred, not whitened).

    Model2Vec's convention: components by falling variance, each signed so that its
    largest score is positive; ``dims`` above the width rotates without reducing, and
    None (or more dims than rows) leaves the rows as they are.
    """
    data = np.asarray(matrix, dtype=np.float64)
    if dims is None or dims >= data.shape[0]:
        return data.astype(np.float32)
    if dims < 1:
        raise ValueError(f"dims must be at least 1, got {dims}")
    dims = min(dims, data.shape[1])
    centred = data - data.mean(axis=0)
    covariance = centred.T @ centred / max(data.shape[0] - 1, 1)
    _, vectors = np.linalg.eigh(covariance)
    components = vectors[:, ::-1][:, :dims]
    scores = centred @ components
    largest = np.argmax(np.abs(scores), axis=0)
    signs = np.sign(scores[largest, np.arange(dims)])
    signs[signs == 0] = 1
    return (scores * signs).astype(np.float32)


def zipf_probabilities(n: int) -> npt.NDArray[np.float64]:
    """Return Model2Vec's token probabilities from rank alone: p ∝ 1 / (rank + 1)."""
    inverse_rank = 1.0 / np.arange(2, n + 2, dtype=np.float64)
    return inverse_rank / inverse_rank.sum()


def corpus_probabilities(counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return token probabilities from corpus counts with add-one smoothing."""
    smoothed = np.asarray(counts, dtype=np.float64) + 1.0
    return smoothed / smoothed.sum()


def sif_weights(probabilities: npt.ArrayLike, sif_coefficient: float) -> npt.NDArray[np.float64]:
    """Return SIF weights ``sif / (sif + p)``: frequent tokens count less."""
    if not 0 < sif_coefficient < 1:
        raise ValueError(f"sif_coefficient must be between 0 and 1, got {sif_coefficient}")
    p = np.asarray(probabilities, dtype=np.float64)
    return sif_coefficient / (sif_coefficient + p)


# ----------------------------------------------------------------------------- the teacher
def _open_teacher(teacher: Any) -> Any:
    """Return the teacher opened with mean pooling over all positions (a ``Llama``)."""
    from ..engine.llama import Llama
    from ..hub.registry import resolve_params

    if isinstance(teacher, Llama):
        params = teacher.params
    elif isinstance(teacher, LlamaParams):
        params = teacher
    else:
        params = resolve_params(os.fspath(teacher))
    # Distillation means over every position whatever pooling the teacher was trained
    # with (Model2Vec's recipe), so the "opened with another pooling" warning is expected.
    llama = Llama.load(params.with_pooling(Pooling.MEAN), warn_pooling=False)
    if llama.has_rank_head:
        llama.close()
        raise ConversionError(
            f"{llama.model_path.name} is a cross-encoder; distil an embedding model"
        )
    return llama


def _token_vectors(llama: Any, ids: npt.NDArray[np.int64], show_progress: bool) -> FloatArray:
    """Return the teacher's mean-pooled output for each token alone, between its specials."""
    frame = llama.tokenize("")  # the model's own start and end tokens, e.g. [CLS] [SEP]
    head, tail = frame[:1], frame[1:]
    sequences = [np.concatenate([head, [i], tail]).astype(np.int32) for i in ids.tolist()]
    out = np.empty((len(sequences), llama.n_embd), dtype=np.float32)
    from tqdm import tqdm

    with tqdm(
        total=len(sequences), desc="teacher", unit=" tokens", disable=not show_progress
    ) as bar:
        for start in range(0, len(sequences), _CHUNK):
            batch = sequences[start : start + _CHUNK]
            out[start : start + len(batch)] = llama.pooled_rows(batch)
            bar.update(len(batch))
    return np.nan_to_num(out)


def _check_tokenizer(llama: Any, tokenizer: Any, ids: npt.NDArray[np.int64]) -> None:
    """Raise ConversionError unless the rebuilt tokenizer gives llama.cpp's tokens."""
    position = np.full(llama.n_vocab, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    for text in _CHECK_TEXTS:
        theirs = position[llama.tokenize(text, add_special=False)].tolist()
        ours = tokenizer.encode(text, add_special_tokens=False).ids
        if ours != theirs:
            raise ConversionError(
                f"the rebuilt tokenizer splits {text!r} unlike llama.cpp ({ours} vs "
                f"{theirs}); this teacher's tokenizer is not a plain WordPiece or "
                "SentencePiece Unigram one"
            )


def _read_corpus(corpus: str | os.PathLike[str] | Iterable[str]) -> Iterator[str]:
    if isinstance(corpus, (str, os.PathLike)):
        with Path(corpus).open(encoding="utf-8", errors="replace") as handle:
            yield from handle
    else:
        yield from corpus


def _corpus_counts(
    tokenizer: Any, unknown_id: int, corpus: str | os.PathLike[str] | Iterable[str]
) -> tuple[npt.NDArray[np.int64], int]:
    """Return how often each static-model token occurs in the corpus, and its line count.

    The unknown token is not counted: a static model drops it from every text.
    """
    n_vocab = tokenizer.get_vocab_size()
    words = WordCache.for_tokenizer(tokenizer)
    counts = np.zeros(n_vocab, dtype=np.int64)
    lines = 0
    for batch in _batches(_read_corpus(corpus), 8192):
        ids = itertools.chain.from_iterable(encode_ids(tokenizer, words, batch))
        counts += np.bincount(np.fromiter(ids, dtype=np.int64), minlength=n_vocab)
        lines += len(batch)
    counts[unknown_id] = 0
    return counts, lines


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ----------------------------------------------------------------------------- distil
def distill(
    teacher: Any,
    output_dir: str | os.PathLike[str],
    dims: int | None = 256,
    sif_coefficient: float = 1e-4,
    corpus: str | os.PathLike[str] | Iterable[str] | None = None,
    *,
    show_progress: bool = False,
) -> Path:
    """Write a Model2Vec folder distilled from ``teacher`` into ``output_dir``; return it.

    ``teacher``: a GGUF path, a catalogue name, ``LlamaParams`` or an open ``Llama``.
    ``dims``: PCA width (None keeps the teacher's). ``corpus``: a text file or texts whose
    token counts replace Zipf's estimate in the SIF weights.
    """
    if dims is not None and dims < 1:
        raise ValueError(f"dims must be at least 1, got {dims}")
    sif_weights(np.zeros(1), sif_coefficient)  # checks the coefficient before the long pass
    if isinstance(corpus, (str, os.PathLike)) and not Path(corpus).is_file():
        raise ConversionError(f"corpus {corpus} is not a file")
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ConversionError(f"{folder} exists and is not a folder")
    llama = _open_teacher(teacher)
    try:
        vocabulary = teacher_vocabulary(llama.model_path)
        tokenizer = build_tokenizer(vocabulary)
        _check_tokenizer(llama, tokenizer, vocabulary.ids)
        vectors = _token_vectors(llama, vocabulary.ids, show_progress)
        teacher_name = str(llama.metadata.get("general.name") or llama.model_path.stem)
        teacher_fingerprint = llama.fingerprint
    finally:
        llama.close()
    reduced = pca(vectors, dims)
    config: dict[str, Any] = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": teacher_name,
        "apply_pca": dims,
        "sif_coefficient": sif_coefficient,
        "hidden_dim": int(reduced.shape[1]),
        "seq_length": 1000000,
        "normalize": True,
        "pooling": "mean",
        "max_length": 512,
        "embedding_dtype": "float32",
        "teacher_name": teacher_name,
        "teacher_fingerprint": teacher_fingerprint,
        "sif_weights": "zipf",
    }
    if corpus is None:
        probabilities = zipf_probabilities(len(reduced))
    else:
        unknown_id = vocabulary.tokens.index(vocabulary.unknown)
        counts, lines = _corpus_counts(tokenizer, unknown_id, corpus)
        if lines == 0:
            raise ConversionError("the corpus holds no text")
        probabilities = corpus_probabilities(counts)
        config["sif_weights"] = "corpus"
        config["corpus_lines"] = lines
        config["corpus_tokens"] = int(counts.sum())
    weighted = reduced * sif_weights(probabilities, sif_coefficient).astype(np.float32)[:, None]
    return write_folder(folder, weighted, tokenizer, config)
