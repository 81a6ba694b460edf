"""XLM-RoBERTa (bge-m3, bge-reranker-*): conversion, tokenizer, embeddings and rerank.

Checked against independent references: SentencePiece's own tokenizer (ids mapped to
Hugging Face's order), the tokenizers library reading the tokenizer.json, and a numpy
forward pass.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sentencepiece
from reference import BertReference, cosine
from texts import HARD_CASES, stdlib_sentences
from tiny_xlmr import build_tiny_xlmr, hf_ids, train_sentencepiece

from llamaembed import ConversionError, Llama, convert, quantize
from llamaembed.conversion.sentencepiece import read_model
from llamaembed.engine.pooling import sigmoid

SAMPLE = [
    *[t for t in HARD_CASES if t.strip()],
    "plain ascii words and numbers 123 456",
    "accents: café naïve résumé Ångström",
    "CJK 東京 北京 서울 and emoji 🦙🚀",
    "mixed   whitespace\tand\nnewlines  here",
    *stdlib_sentences(60),
]


def copy_folder(source: Path, target: Path) -> Path:
    """Copy a model folder without its converted GGUFs (to spoil the copy)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.gguf"))
    return target


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_sentencepiece(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="module")
def processor(spm_model: Path):  # type: ignore[no-untyped-def]
    return sentencepiece.SentencePieceProcessor(model_file=str(spm_model))


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory: pytest.TempPathFactory, spm_model: Path) -> Path:
    return build_tiny_xlmr(tmp_path_factory.mktemp("xlmr-encoder"), spm_model, seed=3)


@pytest.fixture(scope="module")
def reranker_folder(tmp_path_factory: pytest.TempPathFactory, spm_model: Path) -> Path:
    return build_tiny_xlmr(
        tmp_path_factory.mktemp("xlmr-reranker"), spm_model, classifier=True, seed=4
    )


@pytest.fixture(scope="module")
def encoder_path(encoder_folder: Path) -> Path:
    return convert(encoder_folder, encoder_folder / "encoder-f32.gguf", outtype="f32")


@pytest.fixture(scope="module")
def encoder(encoder_path: Path) -> Iterator[Llama]:
    with Llama(encoder_path) as llama:
        yield llama


@pytest.fixture(scope="module")
def reranker(reranker_folder: Path) -> Iterator[Llama]:
    path = convert(reranker_folder, reranker_folder / "reranker-f32.gguf", outtype="f32")
    with Llama(path) as llama:
        yield llama


def test_sentencepiece_reader_matches_the_library(spm_model: Path, processor) -> None:  # type: ignore[no-untyped-def]
    model = read_model(spm_model)
    assert model.model_type == "unigram"
    assert len(model.pieces) == processor.get_piece_size()
    for i in range(processor.get_piece_size()):
        assert model.pieces[i] == processor.id_to_piece(i)
        assert model.scores[i] == pytest.approx(processor.get_score(i), abs=1e-6)
        kind = (
            2 if processor.is_unknown(i) else 3 if processor.is_control(i)
            else 5 if processor.is_unused(i) else 6 if processor.is_byte(i) else 1
        )
        assert model.types[i] == kind
    assert model.precompiled_charsmap  # nmt_nfkc, as XLM-RoBERTa's
    assert model.add_dummy_prefix and model.remove_extra_whitespaces


def test_gguf_metadata_is_what_llama_cpp_expects(encoder_path: Path, processor) -> None:  # type: ignore[no-untyped-def]
    import gguf

    reader = gguf.GGUFReader(encoder_path)
    fields = reader.fields

    def scalar(key: str):  # type: ignore[no-untyped-def]
        return fields[key].contents()

    assert scalar("general.architecture") == "bert"
    assert scalar("tokenizer.ggml.model") == "t5"
    assert scalar("tokenizer.ggml.pre") == "default"
    assert scalar("bert.context_length") == 128  # 131 positions - (pad 1 + 1)
    assert scalar("bert.pooling_type") == 2  # CLS, from 1_Pooling
    assert scalar("tokenizer.ggml.token_type_count") == 1
    for key, value in (("bos", 0), ("eos", 2), ("unknown", 3), ("seperator", 2),
                       ("padding", 1), ("mask", processor.get_piece_size() + 1)):
        assert scalar(f"tokenizer.ggml.{key}_token_id") == value, key
    assert scalar("tokenizer.ggml.add_bos_token") is True
    assert scalar("tokenizer.ggml.add_eos_token") is True
    assert scalar("tokenizer.ggml.add_sep_token") is True
    assert scalar("tokenizer.ggml.add_space_prefix") is True
    assert scalar("tokenizer.ggml.remove_extra_whitespaces") is True
    assert "tokenizer.ggml.precompiled_charsmap" in fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert tokens[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert tokens[4] == processor.id_to_piece(3)
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["position_embd.weight"].shape.tolist() == [64, 128]
    assert tensors["token_types.weight"].shape.tolist() == [64, 1]
    assert not any(name.startswith(("cls", "pooler")) for name in tensors)


def test_opens_with_its_full_context_and_cls_pooling(encoder: Llama) -> None:
    assert encoder.n_ctx == encoder.max_tokens == 128  # the trained context, not capped
    assert encoder.pooling.value == "cls" and not encoder.is_reranker
    long_text = " ".join(["memory"] * 400)
    assert len(encoder.tokenize(long_text)) > 128
    assert encoder.embed(long_text).shape == (64,)  # truncated to the context, with a warning


def test_token_ids_equal_sentencepiece_in_hugging_face_order(encoder: Llama, processor) -> None:  # type: ignore[no-untyped-def]
    # One known difference: in a run of over 100 characters without a space, SentencePiece's
    # own encoder segments differently; llama.cpp agrees with Hugging Face's tokenizers there
    # (the next test covers those texts too).
    sample = [t for t in SAMPLE if max(map(len, t.split()), default=0) <= 100]
    assert len(sample) >= len(SAMPLE) - 2
    mismatches = [
        (text, encoder.tokenize(text).tolist(), hf_ids(processor, text))
        for text in sample
        if encoder.tokenize(text).tolist() != hf_ids(processor, text)
    ]
    assert not mismatches, mismatches[:3]


def test_token_ids_equal_the_tokenizers_library(encoder: Llama, encoder_folder: Path) -> None:
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(encoder_folder / "tokenizer.json"))
    # Hugging Face's fast tokenizer keeps a trailing space as a "▁" piece where
    # SentencePiece (and llama.cpp) drop it: compare texts without edge whitespace.
    for text in (t for t in SAMPLE if t == t.strip()):
        assert encoder.tokenize(text).tolist() == hf.encode(text).ids, text


def test_tokenizer_json_alone_converts_to_the_same_vocabulary(
    encoder_folder: Path, encoder: Llama, tmp_path: Path
) -> None:
    folder = copy_folder(encoder_folder, tmp_path / "json-only")
    (folder / "sentencepiece.bpe.model").unlink()
    path = convert(folder, tmp_path / "json-only.gguf", outtype="f32")
    with Llama(path) as from_json:
        for text in SAMPLE:
            assert from_json.tokenize(text).tolist() == encoder.tokenize(text).tolist(), text
        vectors = from_json.embed_texts(SAMPLE[:8])
    assert np.abs(vectors - encoder.embed_texts(SAMPLE[:8])).max() < 1e-5


def test_cls_embeddings_equal_the_numpy_reference(
    encoder: Llama, encoder_folder: Path
) -> None:
    reference = BertReference(encoder_folder)
    texts = SAMPLE[:40]
    got = encoder.embed_texts(texts, normalize=False)
    for text, vector in zip(texts, got, strict=True):
        expected = reference.embed(encoder.tokenize(text).tolist(), pooling="cls")
        assert cosine(vector, expected) >= 0.9999, text


def test_rerank_equals_the_reference(reranker: Llama, reranker_folder: Path, processor) -> None:  # type: ignore[no-untyped-def]
    assert reranker.is_reranker
    reference = BertReference(reranker_folder)
    query = "which language is memory safe"
    docs = SAMPLE[5:25]
    scores = reranker.rerank(query, docs)
    for doc, score in zip(docs, scores, strict=True):
        # Hugging Face's pair: <s> query </s></s> document </s>
        ids = [*hf_ids(processor, query), 2, *hf_ids(processor, doc)[1:]]
        expected = float(reference.classify(ids)[0])
        # Relevance scores (sigmoid) within 1e-3; raw logits (about 2-3 in size here) within
        # 5e-3: measured up to 1.4e-3, with flash attention on or off, i.e. 5e-4 relative.
        assert abs(sigmoid(np.float32(score)) - sigmoid(np.float32(expected))) < 1e-3, doc
        assert abs(float(score) - expected) < 5e-3, doc


@pytest.mark.parametrize("qtype", ["f16", "q8_0", "q4_k_m"])
def test_quantised_types_load_and_embed(
    encoder_path: Path, encoder: Llama, qtype: str, tmp_path: Path
) -> None:
    path = quantize(encoder_path, tmp_path / f"xlmr-{qtype}.gguf", qtype)
    texts = SAMPLE[:20]
    with Llama(path) as llama:
        assert llama.tokenize(texts[3]).tolist() == encoder.tokenize(texts[3]).tolist()
        got = llama.embed_texts(texts)
    floor = {"f16": 0.999, "q8_0": 0.99, "q4_k_m": 0.9}[qtype]
    cos = np.sum(got * encoder.embed_texts(texts), axis=1)
    assert cos.min() >= floor


def test_official_style_cross_encoder_opens_with_rank_pooling(
    reranker_folder: Path, reranker: Llama, tmp_path: Path
) -> None:
    """A cross-encoder GGUF as llama.cpp's converter writes it: labels, cls.*, no pooling key."""
    official = tmp_path / "official-style.gguf"
    _copy_without(reranker_folder / "reranker-f32.gguf", official, "bert.pooling_type")
    with Llama(official) as llama:
        assert llama.pooling.value == "rank" and llama.is_reranker
        docs = SAMPLE[5:12]
        assert np.allclose(
            llama.rerank("memory safe", docs), reranker.rerank("memory safe", docs), atol=1e-5
        )


def _copy_without(source: Path, target: Path, key: str) -> None:
    import gguf

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, "bert")
    for field in reader.fields.values():
        if field.name == key or field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(field.name, value, vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(field.name, value, vtype)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape,
                          raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ----------------------------------------------------------------------------- bad input
def test_bpe_sentencepiece_model_is_refused(encoder_folder: Path, tmp_path: Path) -> None:
    bpe = train_sentencepiece(tmp_path, model_type="bpe")
    folder = copy_folder(encoder_folder, tmp_path / "bpe")
    shutil.copy(bpe, folder / "sentencepiece.bpe.model")
    out = tmp_path / "out.gguf"
    with pytest.raises(ConversionError, match=r"sentencepiece\.bpe\.model.*bpe model"):
        convert(folder, out)
    assert not out.exists() and not list(tmp_path.glob("out.gguf*"))


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_sentencepiece_model_is_refused(
    encoder_folder: Path, tmp_path: Path, cut: float
) -> None:
    folder = copy_folder(encoder_folder, tmp_path / "cut")
    model = folder / "sentencepiece.bpe.model"
    data = model.read_bytes()
    model.write_bytes(data[: int(len(data) * cut)])
    out = tmp_path / "out.gguf"
    with pytest.raises(ConversionError, match=r"sentencepiece\.bpe\.model"):
        convert(folder, out)
    assert not list(tmp_path.glob("out.gguf*"))


def test_not_a_sentencepiece_file_is_refused(encoder_folder: Path, tmp_path: Path) -> None:
    folder = copy_folder(encoder_folder, tmp_path / "junk")
    (folder / "sentencepiece.bpe.model").write_bytes(b"\xff" * 100)
    with pytest.raises(ConversionError, match=r"sentencepiece\.bpe\.model"):
        convert(folder, tmp_path / "out.gguf")


def test_tokenizer_json_of_another_type_is_refused(
    encoder_folder: Path, tiny_encoder_folder: Path, tmp_path: Path
) -> None:
    folder = copy_folder(encoder_folder, tmp_path / "wordpiece")
    (folder / "sentencepiece.bpe.model").unlink()
    shutil.copy(tiny_encoder_folder / "tokenizer.json", folder / "tokenizer.json")
    out = tmp_path / "out.gguf"
    with pytest.raises(ConversionError, match=r"tokenizer\.json.*not Unigram"):
        convert(folder, out)
    assert not list(tmp_path.glob("out.gguf*"))
