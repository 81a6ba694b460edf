"""The static tier: distil from GGUF teachers, load Model2Vec folders, embed fast and right.

References: Model2Vec itself (its loader and encoder read our folders; its own ``distill``
writes folders our loader reads), sentence-transformers' StaticEmbedding, the tokenizers
library (our word cache must give its ids) and llama.cpp's tokenizer (the rebuilt
tokenizer must give the teacher's ids).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import string
from collections.abc import Iterator
from pathlib import Path

import httpx
import model2vec
import numpy as np
import pytest
from click.testing import CliRunner
from server_process import ServerProcess
from texts import HARD_CASES, stdlib_sentences, varied_texts

from llamaembed import (
    ConversionError,
    Index,
    InvalidTokenError,
    Llama,
    ModelLoadError,
    RerankNotSupportedError,
    StaticModel,
    convert,
    distill,
)
from llamaembed.cli import main
from llamaembed.outputs import ModelInput
from llamaembed.static._words import WordCache
from llamaembed.static.distill import (
    build_tokenizer,
    corpus_probabilities,
    pca,
    sif_weights,
    teacher_vocabulary,
    zipf_probabilities,
)
from llamaembed.static.model import mean_rows

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Model2Vec's distill asks the hub for a card


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def _has_long_word(text: str) -> bool:
    return any(len(word) > 100 for word in text.split())


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_static(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return distill(tiny_encoder_path, tmp_path_factory.mktemp("tiny-static"), dims=32)


@pytest.fixture(scope="module")
def minilm_static(minilm_f16_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return distill(minilm_f16_path, tmp_path_factory.mktemp("minilm-static"))


@pytest.fixture(scope="module")
def minilm_model(minilm_static: Path) -> StaticModel:
    return StaticModel(minilm_static)


@pytest.fixture(scope="module")
def model2vec_minilm(minilm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model2vec.distill import distill as m2v_distill

    target = tmp_path_factory.mktemp("m2v-minilm")
    m2v_distill(str(minilm_folder)).save_pretrained(target)
    return target


# ----------------------------------------------------------------------------- pure parts
def test_mean_rows_equals_a_loop() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 8)).astype(np.float32)
    lists = [[1, 2, 3], [], [7], [4, 4, 9, 0], []]
    flat = np.array([i for ids in lists for i in ids], dtype=np.int64)
    lengths = np.array([len(ids) for ids in lists], dtype=np.int64)
    got = mean_rows(table, flat, lengths)
    for ids, row in zip(lists, got, strict=True):
        expected = table[ids].mean(axis=0) if ids else np.zeros(8)
        assert np.abs(row - expected).max() <= 1e-6
    weights = rng.uniform(0.5, 2, size=50).astype(np.float32)
    mapping = rng.integers(0, 10, size=50)
    got = mean_rows(table[:10], flat, lengths, weights, mapping)
    for ids, row in zip(lists, got, strict=True):
        expected = (table[mapping[ids]] * weights[ids, None]).mean(axis=0) if ids else 0
        assert np.abs(row - expected).max() <= 1e-6
    assert mean_rows(table, flat[:0], np.zeros(3, np.int64)).shape == (3, 8)


def test_pca_and_weights_follow_model2vec() -> None:
    from model2vec.distill.inference import apply_pca, compute_weights

    rng = np.random.default_rng(1)
    data = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24))
    for dims in (8, 24, 40):
        ours = pca(data, dims)
        theirs = apply_pca(data.copy(), dims)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()
    assert np.array_equal(pca(data[:5], 8), data[:5].astype(np.float32))  # fewer rows than dims
    for sif in (1e-3, 1e-4):
        expected = compute_weights(1000, sif)
        assert np.allclose(sif_weights(zipf_probabilities(1000), sif), expected, rtol=1e-12)
    p = corpus_probabilities([0, 1, 8])
    assert np.allclose(p, [1 / 12, 2 / 12, 9 / 12])
    with pytest.raises(ValueError, match="sif_coefficient"):
        sif_weights(p, 0)


# ----------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("teacher", ["tiny", "minilm"])
def test_rebuilt_tokenizer_gives_llama_cpp_ids(
    teacher: str,
    tiny_encoder_path: Path,
    tiny_static: Path,
    minilm_f16_path: Path,
    minilm_static: Path,
) -> None:
    from tokenizers import Tokenizer

    gguf, folder = (
        (tiny_encoder_path, tiny_static) if teacher == "tiny" else (minilm_f16_path, minilm_static)
    )
    vocabulary = teacher_vocabulary(gguf)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    position = {int(t): i for i, t in enumerate(vocabulary.ids)}
    texts = [t for t in varied_texts() if not _has_long_word(t)]
    assert len(texts) >= 200
    with Llama(gguf) as llama:
        for text in texts:
            theirs = [position[t] for t in llama.tokenize(text, add_special=False).tolist()]
            assert tokenizer.encode(text, add_special_tokens=False).ids == theirs, text


def test_vocabulary_drops_unused_and_control_tokens(minilm_f16_path: Path) -> None:
    vocabulary = teacher_vocabulary(minilm_f16_path)
    assert len(vocabulary.ids) == 30522 - 994 - 3  # no [unused…], [CLS], [SEP], [MASK]
    assert vocabulary.tokens[:2] == ["[PAD]", "[UNK]"] and vocabulary.unknown == "[UNK]"
    assert "##ing" in vocabulary.tokens and "the" in vocabulary.tokens
    assert not {"[CLS]", "[SEP]", "[MASK]", "[unused0]"} & set(vocabulary.tokens)
    assert list(vocabulary.ids) == sorted(vocabulary.ids)


def _fuzz_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " " * 12 + "\t\n\r"
    texts = []
    for _ in range(n):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        if rng.random() < 0.1:
            text += " " + "x" * rng.randint(95, 110)  # around WordPiece's 100-character limit
        if rng.random() < 0.05:
            text += rng.choice(["\x00", "\x07", "\x0b", "\x0c", "\x7f", "é", "[UNK]", "[pad]"])
        texts.append(text)
    return texts


@pytest.mark.parametrize("which", ["ours", "model2vec"])
def test_word_cache_gives_the_librarys_ids(
    which: str, minilm_static: Path, model2vec_minilm: Path
) -> None:
    from tokenizers import Tokenizer

    folder = minilm_static if which == "ours" else model2vec_minilm
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    cache = WordCache.for_tokenizer(tokenizer)
    assert cache is not None
    texts = varied_texts() + _fuzz_texts(0, 3000) + ["[UNK] here", "a [PAD] b", "Hello WORLD"]
    expected = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert cache.encode(texts) == expected
    assert cache.encode(texts) == expected  # again, from the cache


# ----------------------------------------------------------------------------- interop
def test_model2vec_loads_our_folder_and_gives_our_vectors(
    minilm_static: Path, minilm_model: StaticModel
) -> None:
    reference = model2vec.StaticModel.from_pretrained(minilm_static)
    texts = [*varied_texts(), "x" * 1000000, "word " * 200000]
    ours, theirs = minilm_model.embed_texts(texts), reference.encode(texts)
    known = np.linalg.norm(theirs, axis=1) > 0
    assert known.sum() >= len(texts) - 5
    assert cosines(ours[known], theirs[known]).min() >= 0.9999
    assert np.all(ours[~known] == 0)


def test_our_loader_reads_model2vecs_own_distillation(
    model2vec_minilm: Path, minilm_static: Path
) -> None:
    # float32: Model2Vec would otherwise average its float16 table in float16
    reference = model2vec.StaticModel.from_pretrained(model2vec_minilm, quantize_to="float32")
    theirs_folder = StaticModel(model2vec_minilm)
    assert theirs_folder.n_vocab == StaticModel(minilm_static).n_vocab  # same vocabulary rule
    texts = [*varied_texts(), "[UNK] and [PAD]", "x" * 1000000]
    ours, theirs = theirs_folder.embed_texts(texts), reference.encode(texts)
    known = np.linalg.norm(theirs, axis=1) > 0
    assert cosines(ours[known], theirs[known]).min() >= 0.9999
    assert np.all(ours[~known] == 0)


def test_tiny_teacher_both_ways(
    tiny_static: Path, tiny_encoder_folder: Path, tmp_path: Path
) -> None:
    from model2vec.distill import distill as m2v_distill

    texts = stdlib_sentences(80) + HARD_CASES
    ours = StaticModel(tiny_static)
    reference = model2vec.StaticModel.from_pretrained(tiny_static)
    a, b = ours.embed_texts(texts), reference.encode(texts)
    known = np.linalg.norm(b, axis=1) > 0
    assert known.sum() > len(texts) // 2 and np.all(a[~known] == 0)
    assert cosines(a[known], b[known]).min() >= 0.9999
    m2v_distill(str(tiny_encoder_folder), pca_dims=32).save_pretrained(tmp_path / "m2v")
    theirs = StaticModel(tmp_path / "m2v")
    reference = model2vec.StaticModel.from_pretrained(tmp_path / "m2v", quantize_to="float32")
    a, b = theirs.embed_texts(texts), reference.encode(texts)
    known = np.linalg.norm(b, axis=1) > 0
    assert known.sum() > len(texts) // 2
    assert cosines(a[known], b[known]).min() >= 0.9999


def test_sentence_transformers_loads_our_folder(
    minilm_static: Path, minilm_model: StaticModel
) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_static), device="cpu")
    texts = stdlib_sentences(100)  # English: no unknown token (ST would average it in)
    theirs = model.encode(texts)
    assert cosines(minilm_model.embed_texts(texts), theirs).min() >= 0.9999


# ----------------------------------------------------------------------------- behaviour
def test_distilled_folder_format(minilm_static: Path, minilm_f16_path: Path) -> None:
    config = json.loads((minilm_static / "config.json").read_text())
    with Llama(minilm_f16_path, pooling="mean") as teacher:
        fingerprint = teacher.fingerprint
    assert config["model_type"] == "model2vec" and config["normalize"] is True
    assert (config["hidden_dim"], config["apply_pca"], config["sif_coefficient"]) == (
        256,
        256,
        1e-4,
    )
    assert config["teacher_name"] == "all-MiniLM-L6-v2"
    assert config["teacher_fingerprint"] == fingerprint
    modules = json.loads((minilm_static / "modules.json").read_text())
    assert modules[0]["type"].endswith("StaticEmbedding")
    from safetensors.numpy import load_file

    table = load_file(minilm_static / "model.safetensors")["embeddings"]
    assert table.shape == (29525, 256) and table.dtype == np.float32
    assert not list(minilm_static.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_static_vectors_track_the_teacher(minilm: Llama, minilm_model: StaticModel) -> None:
    from scipy.stats import spearmanr

    sentences = stdlib_sentences(400)
    rng = random.Random(1)
    neighbours = list(itertools.pairwise(sentences[:301]))
    pairs = neighbours + [tuple(rng.sample(sentences, 2)) for _ in range(300)]
    left, right = [a for a, _ in pairs], [b for _, b in pairs]
    teacher = cosines(minilm.embed_texts(left), minilm.embed_texts(right))
    static = cosines(minilm_model.embed_texts(left), minilm_model.embed_texts(right))
    agreement = spearmanr(teacher, static).statistic
    # The same tokens with random vectors: what word overlap alone is worth.
    table = np.random.default_rng(0).normal(size=minilm_model._table.shape).astype(np.float32)

    def overlap_only(texts: list[str]) -> np.ndarray:
        return mean_rows(table, *minilm_model._encode(texts, 512))

    chance = spearmanr(teacher, cosines(overlap_only(left), overlap_only(right))).statistic
    assert agreement >= 0.6 and agreement >= chance + 0.1, (agreement, chance)  # 0.69, 0.55


def test_edge_texts_give_defined_vectors(minilm_model: StaticModel) -> None:
    # Empty, whitespace, control characters, unknown only (emoji; one 1 MB word), then
    # 1 MB of words and a short text.
    texts = ["", " ", "\t\n", "\x00\x07", "🦙🦙", "x" * 1_000_000, "word " * 200_000, "hello"]
    vectors = minilm_model.embed_texts(texts)
    assert vectors.shape == (len(texts), 256) and np.isfinite(vectors).all()
    assert np.all(vectors[:6] == 0)  # no known token: the zero vector, as in Model2Vec
    assert np.allclose(np.linalg.norm(vectors[6:], axis=1), 1, atol=1e-5)
    assert np.array_equal(minilm_model.embed("hello"), vectors[-1])
    assert minilm_model.embed_texts([]).shape == (0, 256)
    with pytest.raises(TypeError):
        minilm_model.embed_texts("one string")
    long_text = " ".join(stdlib_sentences(300))
    assert len(minilm_model.prepare_texts([long_text])[0]) == 512
    assert len(minilm_model.prepare_texts([long_text], truncate=False)[0]) > 512


def test_batch_equals_one_by_one(minilm_model: StaticModel) -> None:
    texts = varied_texts() * 40  # crosses the 8192-text chunk
    together = minilm_model.embed_texts(texts)
    for i in (0, 5, 200, 8191, 8192, len(texts) - 1):
        assert np.array_equal(together[i], minilm_model.embed(texts[i]))
    assert np.array_equal(minilm_model.embed_texts(texts[:50], batch_size=7), together[:50])
    for bad in (0, -1, 2.5):  # -1 once returned an unfilled array
        with pytest.raises(ValueError, match="batch_size"):
            minilm_model.embed_texts(texts[:50], batch_size=bad)  # type: ignore[arg-type]


def test_bad_folders_give_our_error(minilm_static: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a folder"):
        StaticModel(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a static model folder"):
        StaticModel(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "modules.json"):
        (broken / name).write_bytes((minilm_static / name).read_bytes())
    data = (minilm_static / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="safetensors"):
        StaticModel(broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="safetensors"):
        StaticModel(broken)
    (broken / "model.safetensors").write_bytes(data)
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="tokenizer"):
        StaticModel(broken)
    (broken / "tokenizer.json").write_bytes((minilm_static / "tokenizer.json").read_bytes())
    (broken / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="JSON object"):
        StaticModel(broken)


def test_bad_tensors_give_our_error(minilm_static: Path, tmp_path: Path) -> None:
    """A table, mapping or weights that does not fit the tokenizer is refused at load."""
    from safetensors.numpy import save_file

    table = StaticModel(minilm_static)._table
    n = len(table)
    mapping = np.arange(n, dtype=np.int64)
    cases = [
        ({"vectors": table}, "no 'embeddings' tensor"),
        ({"embeddings": table[:, 0]}, "not a \\(tokens, dim\\) table"),
        ({"embeddings": table[:-1]}, f"{n - 1} vectors for {n} tokenizer tokens"),
        ({"embeddings": table, "mapping": mapping[:-1]}, "mapping does not fit"),
        ({"embeddings": table, "mapping": np.where(mapping == 7, n, mapping)}, "mapping"),
        ({"embeddings": table, "mapping": np.where(mapping == 7, -1, mapping)}, "mapping"),
        ({"embeddings": table, "mapping": mapping.astype(np.float32)}, "mapping"),
        ({"embeddings": table, "weights": np.ones(n - 1, np.float32)}, f"{n - 1} token weights"),
        ({"embeddings": table, "weights": np.ones((n, 2), np.float32)}, "token weights"),
    ]
    for i, (tensors, message) in enumerate(cases):
        folder = tmp_path / str(i)
        folder.mkdir()
        for name in ("config.json", "tokenizer.json", "modules.json"):
            (folder / name).write_bytes((minilm_static / name).read_bytes())
        save_file(tensors, str(folder / "model.safetensors"))
        with pytest.raises(ModelLoadError, match=message):
            StaticModel(folder)
    # A mapping that fits loads, and sends each token to its row.
    folder = tmp_path / "mapped"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "modules.json"):
        (folder / name).write_bytes((minilm_static / name).read_bytes())
    save_file({"embeddings": table[::-1].copy(), "mapping": mapping[::-1].copy()},
              str(folder / "model.safetensors"))
    text = "static vectors are a cheap first stage"
    assert np.allclose(StaticModel(folder).embed(text), StaticModel(minilm_static).embed(text))


def test_token_inputs_and_rerank_refusal(minilm_model: StaticModel) -> None:
    ids = minilm_model.tokenize("hello world")
    assert np.array_equal(
        minilm_model.forward([ModelInput(t) for t in minilm_model.prepare_tokens([ids])])[0].pooled,
        minilm_model.embed("hello world", normalize=False),
    )
    with pytest.raises(InvalidTokenError, match="29525"):
        minilm_model.prepare_tokens([[1, 29525]])
    with pytest.raises(RerankNotSupportedError):
        minilm_model.rerank("q", ["d"])


def test_corpus_weights(minilm_f16_path: Path, minilm_static: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(stdlib_sentences(300)) + "\n")
    folder = distill(minilm_f16_path, tmp_path / "weighted", corpus=corpus)
    config = json.loads((folder / "config.json").read_text())
    assert config["sif_weights"] == "corpus" and config["corpus_lines"] == 300
    model, plain = StaticModel(folder), StaticModel(minilm_static)
    counts = np.bincount(
        model._encode(corpus.read_text().splitlines(), None)[0], minlength=model.n_vocab
    )
    assert counts.sum() == config["corpus_tokens"]
    # Same PCA rows, reweighted: corpus weights over Zipf weights, token by token.
    ratio = sif_weights(corpus_probabilities(counts), 1e-4) / sif_weights(
        zipf_probabilities(model.n_vocab), 1e-4
    )
    expected = plain._table * ratio[:, None].astype(np.float32)
    assert np.abs(model._table - expected).max() <= 1e-5
    the = model._words.encode(["the"])[0][0] if model._words else None
    assert the is not None and counts[the] > 100
    assert np.linalg.norm(model._table[the]) < np.linalg.norm(plain._table[the])


def test_distill_refuses_what_it_cannot_do(
    tiny_reranker_path: Path, tiny_encoder_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConversionError, match="cross-encoder"):
        distill(tiny_reranker_path, tmp_path / "a")
    with pytest.raises(ValueError, match="sif_coefficient"):
        distill(tiny_encoder_path, tmp_path / "b", sif_coefficient=2)
    with pytest.raises(ConversionError, match="corpus"):
        distill(tiny_encoder_path, tmp_path / "c", corpus=tmp_path / "nope.txt")
    assert not (tmp_path / "a").exists()


def test_sentencepiece_teacher(tmp_path: Path) -> None:
    """An XLM-RoBERTa teacher: a Unigram tokenizer rebuilt from the GGUF, checked 3 ways."""
    import sentencepiece as spm
    from tiny_xlmr import build_tiny_xlmr, train_sentencepiece

    model_file = train_sentencepiece(tmp_path)
    folder = build_tiny_xlmr(tmp_path / "xlmr", model_file, seed=5)
    gguf = convert(folder, tmp_path / "xlmr.gguf", outtype="f32")
    vocabulary = teacher_vocabulary(gguf)
    assert vocabulary.kind == "unigram" and vocabulary.charsmap
    assert "<s>" not in vocabulary.tokens and "<unk>" in vocabulary.tokens
    tokenizer = build_tokenizer(vocabulary)
    texts = varied_texts()
    processor = spm.SentencePieceProcessor(model_file=str(model_file))
    compared = 0
    with Llama(gguf) as teacher:
        for text in texts:
            ours = [vocabulary.ids[i] for i in tokenizer.encode(text, add_special_tokens=False).ids]
            assert ours == teacher.tokenize(text, add_special=False).tolist(), text
            # SentencePiece itself, the independent reference: the same pieces. A word over
            # 100 characters is the exception: SentencePiece splits it otherwise (llama.cpp
            # and the tokenizers library agree with each other there).
            if max(map(len, text.split()), default=0) <= 100:
                pieces = [vocabulary.tokens[i] for i in tokenizer.encode(text).ids]
                reference = [processor.id_to_piece(i) for i in processor.encode(text)]
                assert pieces == reference, text
                compared += 1
    assert compared >= len(texts) - 3
    out = distill(gguf, tmp_path / "static", dims=16)
    ours = StaticModel(out).embed_texts(texts)
    theirs = model2vec.StaticModel.from_pretrained(out).encode(texts)
    known = np.linalg.norm(theirs, axis=1) > 0
    assert known.sum() > len(texts) - 5
    assert cosines(ours[known], theirs[known]).min() >= 0.9999
    assert json.loads((out / "config.json").read_text())["teacher_fingerprint"]


def test_distill_refuses_a_bpe_teacher(smollm2_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="SentencePiece Unigram"):
        distill(smollm2_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- index, CLI, server
def test_index_and_cli_take_a_static_folder(minilm_static: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rust.txt").write_text("Rust is a memory-safe systems programming language.")
    (docs / "cats.txt").write_text("Cats sleep for most of the day and chase mice at night.")
    (docs / "bread.txt").write_text("Bake the bread in a hot oven until the crust is brown.")
    db = tmp_path / "db"
    runner = CliRunner()
    result = runner.invoke(
        main, ["index", str(docs), "--db", str(db), "--model", str(minilm_static)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["search", "memory safe language", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["metadata"]["source"].endswith("rust.txt")
    result = runner.invoke(main, ["embed", "hello", "--model", str(minilm_static)])
    assert result.exit_code == 0 and len(json.loads(result.output)[0]) == 256
    with StaticModel(minilm_static) as model:
        index = Index(model)
        index.add(["a cat on a mat", "stock prices fell", "kittens sleeping"])
        assert index.search("a sleeping cat", k=1)[0].text in ("a cat on a mat", "kittens sleeping")
        index.save(tmp_path / "saved")
        assert len(Index.load(tmp_path / "saved", model)) == 3


def test_cli_distill(tiny_encoder_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["distill", str(tiny_encoder_path), "-o", str(tmp_path / "s"), "--dims", "16"]
    )
    assert result.exit_code == 0, result.output
    assert StaticModel(tmp_path / "s").n_embd == 16
    result = runner.invoke(main, ["distill", str(tmp_path / "missing.gguf"), "-o", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("Error:")


@pytest.fixture(scope="module")
def static_server(minilm_static: Path) -> Iterator[ServerProcess]:
    with ServerProcess(minilm_static) as server:
        yield server


def test_server_serves_a_static_model(
    static_server: ServerProcess, minilm_model: StaticModel
) -> None:
    import base64

    texts = stdlib_sentences(50)
    response = httpx.post(f"{static_server.url}/v1/embeddings", json={"input": texts}, timeout=30)
    assert response.status_code == 200, response.text
    got = np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
    expected = minilm_model.embed_texts(texts)
    assert cosines(got, expected).min() >= 0.99999
    # A blank text (a zero vector in the library) is refused by the server, as for GGUFs.
    blank = httpx.post(f"{static_server.url}/v1/embeddings", json={"input": [*texts, "   "]})
    assert blank.status_code == 400 and blank.json()["error"]["code"] == "empty_input"
    ids = minilm_model.tokenize("hello world").tolist()
    response = httpx.post(
        f"{static_server.url}/v1/embeddings",
        json={"input": [ids], "encoding_format": "base64", "dimensions": 64},
        timeout=30,
    )
    vector = np.frombuffer(base64.b64decode(response.json()["data"][0]["embedding"]), "<f4")
    head = minilm_model.embed("hello world", normalize=False)[:64]
    assert cosines(vector[None], head[None])[0] >= 0.99999
    models = httpx.get(f"{static_server.url}/v1/models", timeout=10).json()["data"]
    assert models[0]["dimensions"] == 256
    bad = httpx.post(f"{static_server.url}/v1/embeddings", json={"input": [[99999999]]})
    assert bad.status_code == 400 and bad.json()["error"]["code"]
