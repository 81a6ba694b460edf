"""The converter and quantiser: fidelity to Hugging Face, and clean failures."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from reference import BertReference, cosine
from texts import varied_texts

from llamaembed import (
    ConversionError,
    Llama,
    ModelLoadError,
    Pooling,
    QuantizationError,
    convert,
    quantize,
)

# Texts where HF's WordPiece and llama.cpp differ by design: HF maps a word of more than
# 100 characters to [UNK] (max_input_chars_per_word), llama.cpp splits it into pieces.
LONG_WORD = 100


def _has_long_word(text: str) -> bool:
    return any(len(word) > LONG_WORD for word in text.split())


def test_metadata_is_what_llama_cpp_expects(minilm: Llama) -> None:
    meta = minilm.metadata
    expected = {
        "general.architecture": "bert",
        "bert.block_count": "6",
        "bert.context_length": "512",
        "bert.embedding_length": "384",
        "bert.feed_forward_length": "1536",
        "bert.attention.head_count": "12",
        "bert.attention.causal": "false",
        "bert.pooling_type": "1",
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.bos_token_id": "101",
        "tokenizer.ggml.eos_token_id": "102",
        "tokenizer.ggml.unknown_token_id": "100",
        "tokenizer.ggml.padding_token_id": "0",
        "tokenizer.ggml.mask_token_id": "103",
        "tokenizer.ggml.add_bos_token": "true",
        "tokenizer.ggml.add_eos_token": "true",
        "tokenizer.ggml.add_sep_token": "false",
        "tokenizer.ggml.normalizer.lowercase": "true",
        "general.name": "all-MiniLM-L6-v2",
    }
    assert {k: meta.get(k) for k in expected} == expected
    assert minilm.pooling is Pooling.MEAN
    assert (minilm.n_embd, minilm.n_ctx) == (384, 512)


def test_token_ids_equal_hf_tokenizer(minilm: Llama, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    texts = varied_texts()
    assert len(texts) >= 200
    mismatches = []
    for text in texts:
        ours = minilm.tokenize(text).tolist()
        theirs = hf_tokenizer.encode(text).ids
        if ours != theirs:
            mismatches.append(text)
    # The only difference is the documented one (README: words over 100 characters).
    assert all(_has_long_word(t) for t in mismatches), mismatches
    assert any(_has_long_word(t) for t in texts)  # the case is really exercised
    long_text = next(t for t in texts if _has_long_word(t))
    assert 100 in hf_tokenizer.encode(long_text).ids  # HF: [UNK]
    assert 100 not in minilm.tokenize(long_text).tolist()  # llama.cpp: word pieces


def test_empty_text_tokenizes_to_cls_sep(minilm: Llama, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert minilm.tokenize("").tolist() == [101, 102] == hf_tokenizer.encode("").ids


def test_f16_embeddings_match_numpy_reference(
    minilm: Llama, minilm_reference: BertReference, hf_tokenizer
) -> None:  # type: ignore[no-untyped-def]
    texts = [t for t in varied_texts() if not _has_long_word(t)]
    assert len(texts) >= 200
    ours = minilm.embed_texts(texts)
    cosines = [
        cosine(ours[i], minilm_reference.embed(hf_tokenizer.encode(t).ids, "mean"))
        for i, t in enumerate(texts)
    ]
    assert min(cosines) >= 0.9999, (min(cosines), texts[int(np.argmin(cosines))])


def test_tiny_encoder_matches_reference(tiny_encoder_folder: Path, tiny_encoder_path: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_encoder_folder / "tokenizer.json"))
    reference = BertReference(tiny_encoder_folder)
    texts = ["the cat runs", "hello world", "rust code is safe and fast", "", "dogs running"]
    with Llama(tiny_encoder_path) as model:
        assert model.pooling is Pooling.MEAN  # from 1_Pooling/config.json
        ours = model.embed_texts(texts, normalize=False)
        for text, vector in zip(texts, ours, strict=True):
            ids = tokenizer.encode(text).ids
            assert model.tokenize(text).tolist() == ids
            expected = reference.embed(ids, "mean")
            # ggml's GELU reads an FP16 table: a few 1e-4 of absolute error on O(1) values
            assert np.max(np.abs(vector - expected)) < 3e-3
            assert cosine(vector, expected) >= 0.99999


@pytest.mark.parametrize("flash_attn", [True, False])
def test_tiny_cross_encoder_score_matches_reference(
    tiny_reranker_folder: Path, tiny_reranker_path: Path, flash_attn: bool
) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_reranker_folder / "tokenizer.json"))
    reference = BertReference(tiny_reranker_folder)
    query = "rust memory safety"
    docs = ["rust code is safe", "the cat runs", "memory safe systems programming", "", "a",
            "fast vector search index", "hello world " * 20]
    expected, all_type_0 = [], []
    for doc in docs:
        encoding = tokenizer.encode(query, doc)
        assert 1 in encoding.type_ids  # HF: the document is sentence B
        expected.append(reference.classify(encoding.ids, encoding.type_ids)[0])
        all_type_0.append(reference.classify(encoding.ids, [0] * len(encoding.ids))[0])
    with Llama(tiny_reranker_path, flash_attn=flash_attn) as model:
        assert model.pooling is Pooling.RANK
        scores = model.rerank(query, docs)
    assert np.max(np.abs(scores - np.array(expected))) <= 1e-3, (scores, expected)
    # what llama.cpp alone computes (type 0 everywhere) is measurably different
    assert np.max(np.abs(scores - np.array(all_type_0))) > 0.05
    # Order agrees wherever the reference separates two documents by more than the tolerance.
    for i, a in enumerate(expected):
        for j, b in enumerate(expected):
            if a - b > 2e-3:
                assert scores[i] > scores[j], (docs[i], docs[j])


def test_quantized_models_keep_quality(
    minilm: Llama, minilm_quant_path
) -> None:  # type: ignore[no-untyped-def]
    texts = [t for t in varied_texts() if t.strip()][:200]
    reference = minilm.embed_texts(texts)
    bounds = {"q8_0": 0.998, "q4_k_m": 0.98}
    for qtype, bound in bounds.items():
        with Llama(minilm_quant_path(qtype)) as model:
            vectors = model.embed_texts(texts)
        mean_cos = float(np.mean(np.sum(vectors * reference, axis=1)))
        assert mean_cos >= bound, (qtype, mean_cos)


@pytest.mark.parametrize("qtype", ["f16", "q5_k_m", "q4_0"])
def test_other_quant_types_load_and_embed(
    minilm_f32_path: Path, tmp_path: Path, qtype: str, minilm: Llama
) -> None:
    out = quantize(minilm_f32_path, tmp_path / f"m-{qtype}.gguf", qtype)
    with Llama(out) as model:
        v = model.embed("memory safety in systems programming")
    assert cosine(v, minilm.embed("memory safety in systems programming")) > 0.95
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_q8_0_outtype_from_converter(tiny_encoder_folder: Path, tmp_path: Path) -> None:
    out = convert(tiny_encoder_folder, tmp_path / "tiny-q8.gguf", outtype="q8_0")
    with Llama(out) as model:
        assert model.embed("hello world").shape == (64,)


def _file_type(path: Path) -> str:
    with Llama(path, embeddings=False) as model:
        return model.facts.weight_type.lower()


def test_outtype_auto_is_the_cpu_rule_and_says_why(
    tiny_encoder_folder: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from llamaembed.cli import main
    from llamaembed.engine.system import auto_weight_type

    wanted = auto_weight_type()
    result = CliRunner().invoke(main, ["convert", str(tiny_encoder_folder), "-o",
                                       str(tmp_path / "tiny.gguf")])
    assert result.exit_code == 0, result.output
    assert f"auto type: {wanted.type.upper()} ({wanted.reason})" in result.stderr
    assert _file_type(tmp_path / "tiny.gguf") == wanted.type  # the default is auto
    result = CliRunner().invoke(main, ["quantize", str(tmp_path / "tiny.gguf"),
                                       str(tmp_path / "again.gguf"), "auto"])
    assert result.exit_code == 0, result.output
    assert _file_type(tmp_path / "again.gguf") == wanted.type
    assert f"auto type: {wanted.type.upper()}" in result.stderr
    assert convert(tiny_encoder_folder, tmp_path / "lib.gguf") == tmp_path / "lib.gguf"
    assert _file_type(tmp_path / "lib.gguf") == wanted.type
    assert {p.name for p in tmp_path.iterdir()} == {"tiny.gguf", "again.gguf", "lib.gguf"}


def test_bf16_outtype_is_rounded_from_f32(
    minilm_folder: Path, minilm_f32_path: Path, tmp_path: Path
) -> None:
    out = convert(minilm_folder, tmp_path / "m-bf16.gguf", outtype="bf16")
    rounded = quantize(minilm_f32_path, tmp_path / "q-bf16.gguf", "bf16")
    assert _file_type(out) == "bf16"
    texts = varied_texts(20)
    with Llama(out) as a, Llama(rounded) as b, Llama(minilm_f32_path) as f32:
        va, vb, vf = a.embed_texts(texts), b.embed_texts(texts), f32.embed_texts(texts)
    np.testing.assert_array_equal(va, vb)  # the same weights as quantize(F32 -> BF16)
    assert float((va * vf).sum(1).min()) >= 0.999
    assert {p.name for p in tmp_path.iterdir()} == {"m-bf16.gguf", "q-bf16.gguf"}


# ------------------------------------------------------------------ bad input
def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.suffix in (".gguf", ".tmp")]


def test_convert_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="not found"):
        convert(tmp_path / "nope", tmp_path / "out.gguf")
    _no_leftovers(tmp_path)


def test_convert_missing_weights(tiny_encoder_folder: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_encoder_folder, src, ignore=shutil.ignore_patterns("*.safetensors", "*.gguf"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError, match=r"no model weights"):
        convert(src, out / "m.gguf")
    _no_leftovers(out)


def test_convert_unknown_architecture(
    tiny_encoder_folder: Path, tmp_path: Path, llama_cpp_converter: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_encoder_folder, src, ignore=shutil.ignore_patterns("*.gguf"))
    config = json.loads((src / "config.json").read_text())
    config["architectures"] = ["LlamaForCausalLM"]
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match=r"LlamaForCausalLM.*BertModel"):
        convert(src, tmp_path / "m.gguf", converter="llamaembed")
    _no_leftovers(tmp_path)
    # Other architectures go to llama.cpp's converter, whose failure is our error too.
    with pytest.raises(ConversionError, match=r"llama.cpp's converter failed on .*src: "):
        convert(src, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("hidden_size", 100, "hidden_size = 100 but the embeddings are"),
    ("num_attention_heads", 5, "num_attention_heads = 5 does not divide"),
    ("num_attention_heads", 0, "num_attention_heads = 0 does not divide"),
    ("intermediate_size", 5, "intermediate_size = 5 but the feed-forward weights"),
    ("num_hidden_layers", 1, "num_hidden_layers = 1 but the weights hold more layers"),
    ("layer_norm_eps", -1.0, "layer_norm_eps = -1.0 is out of range"),
    ("type_vocab_size", 3, "type_vocab_size = 3 but the weights hold 2 token types"),
    ("max_position_embeddings", 10_000, "context of 10000 tokens does not fit"),
    ("hidden_size", "32", "hidden_size = '32' is not a number"),
])
def test_config_that_contradicts_the_weights_is_refused(
    tiny_encoder_folder: Path, tmp_path: Path, key: str, value: object, message: str
) -> None:
    # Such a config made a GGUF that llama.cpp refused at load or (a negative layer-norm
    # epsilon) aborted on; the converter now names the setting instead.
    src = tmp_path / "src"
    shutil.copytree(tiny_encoder_folder, src, ignore=shutil.ignore_patterns("*.gguf"))
    config = json.loads((src / "config.json").read_text())
    assert config["num_hidden_layers"] > 1 and config.get("type_vocab_size", 2) == 2
    config[key] = value
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match=message):
        convert(src, tmp_path / "m.gguf")
    _no_leftovers(tmp_path)


def test_convert_unwritable_output(tiny_encoder_folder: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/llamaembed-test.gguf")  # unwritable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "m.gguf"
    with pytest.raises(ConversionError, match="cannot write"):
        convert(tiny_encoder_folder, target)
    with pytest.raises(ConversionError, match="does not exist"):
        convert(tiny_encoder_folder, tmp_path / "missing-dir" / "m.gguf")


def test_convert_failure_midway_leaves_no_file(tiny_encoder_folder: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_encoder_folder, src, ignore=shutil.ignore_patterns("*.gguf"))
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])  # truncated weights
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError):
        convert(src, out / "m.gguf")
    _no_leftovers(out)


def test_quantize_unknown_type_lists_valid(minilm_f16_path: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizationError, match=r"q8_0.*q4_k_m"):
        quantize(minilm_f16_path, tmp_path / "x.gguf", "q9_9")
    _no_leftovers(tmp_path)


def test_quantize_non_gguf_input(tmp_path: Path) -> None:
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"PK\x03\x04 not a gguf file at all" * 100)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QuantizationError, match="not a GGUF"):
        quantize(bogus, out / "x.gguf", "q8_0")
    with pytest.raises(QuantizationError, match="not found"):
        quantize(tmp_path / "missing.gguf", out / "x.gguf", "q8_0")
    _no_leftovers(out)


def test_quantize_truncated_gguf_is_an_error(minilm_f16_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(minilm_f16_path.read_bytes()[: 2_000_000])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QuantizationError):
        quantize(broken, out / "x.gguf", "q8_0")
    _no_leftovers(out)


def test_quantize_unwritable_output(minilm_f16_path: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizationError, match="does not exist"):
        quantize(minilm_f16_path, tmp_path / "nope" / "x.gguf", "q8_0")
    with pytest.raises(QuantizationError, match="cannot write"):
        quantize(minilm_f16_path, Path("/proc/llamaembed-q.gguf"), "q8_0")


def test_load_errors_are_ours(tmp_path: Path, minilm_f16_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Llama(tmp_path / "missing.gguf")
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("just some text, not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        Llama(text_file)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(minilm_f16_path.read_bytes()[:3_000_000])
    with pytest.raises(ModelLoadError, match=r"past the end of the file \(truncated"):
        Llama(truncated)
    with pytest.raises(ModelLoadError, match="not a file"):
        Llama(tmp_path)


def test_convert_from_hub_id_offline(tiny_encoder_folder: Path, tiny_encoder_path: Path,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A hub id resolves through huggingface_hub's cache with no network request.
    hub = tmp_path / "hub"
    snapshot = hub / "models--someone--tiny-bert" / "snapshots" / ("b" * 40)
    shutil.copytree(tiny_encoder_folder, snapshot, ignore=shutil.ignore_patterns("*.gguf"))
    (hub / "models--someone--tiny-bert" / "refs").mkdir()
    (hub / "models--someone--tiny-bert" / "refs" / "main").write_text("b" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = convert("someone/tiny-bert", tmp_path / "from-hub.gguf", outtype="f32", cache_dir=hub)
    with Llama(out) as model, Llama(tiny_encoder_path) as local:
        assert cosine(model.embed("the cat runs"), local.embed("the cat runs")) >= 0.99999
    with pytest.raises(ConversionError, match="not found locally"):
        convert("someone/absent-model", tmp_path / "x.gguf", cache_dir=hub)


def test_unsupported_gguf_architecture_is_our_error(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(path, "not-a-real-arch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="architecture"):
        Llama(path)


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "llamaembed", "--version"],
                         capture_output=True, text=True, check=True)
    assert "llamaembed" in out.stdout
