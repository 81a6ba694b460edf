"""bge-m3's dense, lexical and ColBERT outputs, checked against FlagEmbedding's BGEM3FlagModel.

A tiny random bge-m3-shaped folder (XLM-RoBERTa, SentencePiece vocabulary, random
``sparse_linear.pt`` / ``colbert_linear.pt`` written by ``torch.save``) is converted by
our converter and run on llama.cpp; FlagEmbedding runs the same folder in torch.
"""

from __future__ import annotations

import io
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from llamaembed import (
    ConversionError,
    Llama,
    MissingHeadError,
    colbert_score,
    convert,
    lexical_matching_score,
    quantize,
)
from llamaembed.conversion.torch_state import load_state_dict
from llamaembed.heads import heads_path

HIDDEN = 64
TEXTS = [
    "The cat sat on the mat.",
    "Ein kleiner Hund läuft im Park.",
    "short",
    "日本語のテキストも試す。",
    "Search engines rank documents; rerankers rescore the best candidates again.",
    "the the the the repeated words keep their largest weight",
]


@pytest.fixture(scope="module")
def reference(tiny_m3_folder: Path):  # type: ignore[no-untyped-def]
    from FlagEmbedding import BGEM3FlagModel

    model = BGEM3FlagModel(str(tiny_m3_folder), use_fp16=False, devices="cpu")
    return model, model.encode(
        TEXTS, return_dense=True, return_sparse=True, return_colbert_vecs=True
    )


def test_converter_writes_the_heads_beside_the_gguf(tiny_m3_path: Path, tiny_m3: Llama) -> None:
    assert heads_path(tiny_m3_path).is_file()
    caps = tiny_m3.capabilities
    assert caps.sparse and caps.colbert and caps.dense and not caps.multi_vector
    assert tiny_m3.heads is not None and tiny_m3.heads.colbert_dim == HIDDEN
    # the dense path is untouched by the heads: cls pooling gives encode_m3's dense rows
    dense = tiny_m3.encode_m3(TEXTS, return_sparse=False)["dense_vecs"]
    np.testing.assert_allclose(tiny_m3.embed_texts(TEXTS), dense, atol=1e-5)


def test_dense_lexical_and_colbert_equal_flagembedding(tiny_m3: Llama, reference) -> None:  # type: ignore[no-untyped-def]
    _, ref = reference
    out = tiny_m3.encode_m3(TEXTS, return_dense=True, return_sparse=True, return_colbert_vecs=True)
    assert out["dense_vecs"].dtype == np.float32 and out["dense_vecs"].shape == (6, HIDDEN)
    cos = (out["dense_vecs"] * ref["dense_vecs"]).sum(axis=1)
    assert cos.min() >= 0.999
    # llama.cpp's GELU goes through a float16 table: a weight's absolute error stays under
    # 1.5e-3 (measured: at most 1.2e-3 over 1,403 weights of median 0.27), so a weight near
    # 0.01 can miss 2e-2 relative by that much, and one at the threshold may sit either side.
    slack = 1.5e-3
    for ours, theirs in zip(out["lexical_weights"], ref["lexical_weights"], strict=True):
        keys = {k for k, v in theirs.items() if v > 0.01}
        assert keys
        assert {k for k, v in theirs.items() if v > 0.01 + slack} <= set(ours)
        assert {k for k, v in ours.items() if v > 0.01 + slack} <= keys
        for k in keys:
            assert ours.get(k, 0.0) == pytest.approx(float(theirs[k]), rel=2e-2, abs=slack)
        assert all(isinstance(k, str) and isinstance(v, float) for k, v in ours.items())
    for ours, theirs in zip(out["colbert_vecs"], ref["colbert_vecs"], strict=True):
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        assert (ours * theirs).sum(axis=1).min() >= 0.999
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_scores_equal_flagembedding(tiny_m3: Llama, reference) -> None:  # type: ignore[no-untyped-def]
    model, _ = reference
    out = tiny_m3.encode_m3(TEXTS, return_colbert_vecs=True)
    lw, cv = out["lexical_weights"], out["colbert_vecs"]
    assert lexical_matching_score(lw[0], lw[4]) == pytest.approx(
        model.compute_lexical_matching_score(lw[0], lw[4]), rel=1e-9
    )
    matrix = lexical_matching_score(lw, lw)
    assert matrix.shape == (6, 6) and matrix[2, 2] == pytest.approx(
        model.compute_lexical_matching_score(lw[2], lw[2])
    )
    for q, p in ((0, 4), (3, 1), (5, 5)):
        assert colbert_score(cv[q], cv[p]) == pytest.approx(
            float(model.colbert_score(cv[q], cv[p])), abs=1e-5
        )


def test_one_text_and_flags_follow_flagembedding(tiny_m3: Llama) -> None:
    one = tiny_m3.encode_m3("The cat sat on the mat.", return_dense=False, return_colbert_vecs=True)
    assert one["dense_vecs"] is None
    assert isinstance(one["lexical_weights"], dict)
    n_tokens = len(tiny_m3.tokenize("The cat sat on the mat."))
    assert one["colbert_vecs"].shape == (n_tokens - 1, HIDDEN)
    empty = tiny_m3.encode_m3([], return_colbert_vecs=True)
    assert empty["dense_vecs"].shape == (0, HIDDEN)
    assert empty["lexical_weights"] == [] and empty["colbert_vecs"] == []
    # CLS, EOS, PAD and UNK never carry weight
    weights = tiny_m3.encode_m3(TEXTS)["lexical_weights"]
    assert not any(k in w for w in weights for k in ("0", "1", "2", "3"))


def test_quantised_copy_keeps_the_heads(tiny_m3_path: Path, tiny_m3: Llama, tmp_path: Path) -> None:
    q8 = quantize(tiny_m3_path, tmp_path / "m3-q8_0.gguf", "q8_0")
    assert heads_path(q8).read_bytes() == heads_path(tiny_m3_path).read_bytes()
    full = tiny_m3.encode_m3(TEXTS, return_colbert_vecs=True)
    with Llama(q8) as small:
        out = small.encode_m3(TEXTS, return_colbert_vecs=True)
    assert (out["dense_vecs"] * full["dense_vecs"]).sum(axis=1).min() >= 0.99
    for a, b in zip(out["colbert_vecs"], full["colbert_vecs"], strict=True):
        assert a.shape == b.shape and (a * b).sum(axis=1).min() >= 0.98


def test_a_missing_head_is_named(tiny_m3_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(
        tiny_m3_folder, tmp_path / "sparse-only", ignore=shutil.ignore_patterns("*.gguf", "*.heads.*")
    )
    (folder / "colbert_linear.pt").unlink()
    path = convert(folder, folder / "m.gguf", outtype="f32")
    with Llama(path) as model:
        assert model.capabilities.sparse and not model.capabilities.colbert
        assert model.encode_m3(TEXTS[:2])["lexical_weights"][0]
        with pytest.raises(MissingHeadError, match="colbert_linear") as caught:
            model.encode_m3(TEXTS[:2], return_colbert_vecs=True)
        assert "no colbert_linear (ColBERT vectors) head" in str(caught.value)
        assert "sparse_linear (lexical" not in str(caught.value)
    # converting a folder without heads over the same output removes the stale heads file
    (folder / "sparse_linear.pt").unlink()
    path = convert(folder, folder / "m.gguf", outtype="f32")
    assert not heads_path(path).exists()
    with Llama(path) as model, pytest.raises(MissingHeadError, match="sparse_linear"):
        model.encode_m3(TEXTS[:1])


def test_heads_of_the_wrong_width_are_refused(tiny_m3_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(
        tiny_m3_folder, tmp_path / "wrong", ignore=shutil.ignore_patterns("*.gguf", "*.heads.*")
    )
    torch.save(torch.nn.Linear(HIDDEN + 1, 1).state_dict(), folder / "sparse_linear.pt")
    with pytest.raises(ConversionError, match=r"sparse_linear\.weight has shape"):
        convert(folder, folder / "m.gguf", outtype="f32")
    assert not (folder / "m.gguf").exists()


# ----------------------------------------------------------------- reading .pt without torch
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_state_dicts_read_as_torch_wrote_them(tmp_path: Path, dtype: torch.dtype) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    state = {"weight": base.to(dtype), "t": base.t().to(dtype), "row": base[2].to(dtype)}
    torch.save(state, tmp_path / "s.pt")
    read = load_state_dict(tmp_path / "s.pt")
    for name, tensor in state.items():
        np.testing.assert_array_equal(read[name].astype(np.float32), tensor.float().numpy())


def _pt_with_pickle(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
    return path


def test_a_pickle_that_calls_anything_else_is_refused(tiny_m3_folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            import os

            return (os.system, (f"touch {marker}",))

    for payload in (
        pickle.dumps({"weight": Evil()}, protocol=2),
        pickle.dumps(Evil(), protocol=4),
        b"cbuiltins\neval\n(S'1+1'\ntR.",
    ):
        path = _pt_with_pickle(tmp_path / "evil.pt", payload)
        with pytest.raises(ConversionError, match="refused"):
            load_state_dict(path)
    assert not marker.exists()
    # a folder holding such a head is refused before any file is written
    folder = shutil.copytree(
        tiny_m3_folder, tmp_path / "evil", ignore=shutil.ignore_patterns("*.gguf", "*.heads.*")
    )
    shutil.copyfile(path, folder / "sparse_linear.pt")
    with pytest.raises(ConversionError, match="refused"):
        convert(folder, folder / "m.gguf", outtype="f32")
    assert not (folder / "m.gguf").exists() and not marker.exists()


def test_malformed_pt_files_are_our_error(tmp_path: Path) -> None:
    (tmp_path / "not.pt").write_bytes(b"\x80\x02}q\x00.")  # a legacy (non-zip) pickle
    with pytest.raises(ConversionError, match="zip-format"):
        load_state_dict(tmp_path / "not.pt")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(8)}, buffer)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        names = archive.namelist()
        prefix = names[0].split("/")[0]
        with zipfile.ZipFile(tmp_path / "short.pt", "w") as out:
            for name in names:
                content = archive.read(name)
                out.writestr(name, content[:4] if name == f"{prefix}/data/0" else content)
    with pytest.raises(ConversionError, match="truncated"):
        load_state_dict(tmp_path / "short.pt")


# ----------------------------------------------------------------- command line
def test_cli_embed_sparse_and_colbert(tiny_m3: Llama, tiny_m3_path: Path, tiny_encoder_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from llamaembed.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["embed", "-m", str(tiny_m3_path), "--sparse", *TEXTS[:2]])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    want = tiny_m3.encode_m3(TEXTS[:2])["lexical_weights"]
    assert [set(g) for g in got] == [set(w) for w in want]
    assert got[0] == pytest.approx(want[0], abs=1e-6)
    result = runner.invoke(main, ["embed", "-m", str(tiny_m3_path), "--colbert", TEXTS[0]])
    assert result.exit_code == 0, result.output
    matrix = np.asarray(json.loads(result.output)[0])
    want_vecs = tiny_m3.encode_m3(TEXTS[0], return_sparse=False, return_colbert_vecs=True)
    np.testing.assert_allclose(matrix, want_vecs["colbert_vecs"], atol=1e-6)
    both = runner.invoke(main, ["embed", "-m", str(tiny_m3_path), "--sparse", "--colbert", "x"])
    assert both.exit_code == 2 and "one" in both.output
    plain = runner.invoke(main, ["embed", "-m", str(tiny_encoder_path), "--sparse", "x"])
    assert plain.exit_code == 1 and "Error:" in plain.output and "sparse_linear" in plain.output


# ----------------------------------------------------------------- catalogue
def test_catalogue_bge_m3_gets_its_heads_from_baai(
    tiny_m3_path: Path, tiny_m3_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llamaembed.hub import registry

    entry = registry.lookup("bge-m3")
    assert entry.heads == {
        "repo": "BAAI/bge-m3",
        "sparse_linear": "sparse_linear.pt",
        "colbert_linear": "colbert_linear.pt",
    }
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = tmp_path / "hub"

    def lay_out(repo: str, files: dict[str, Path]) -> Path:
        folder = hub / f"models--{repo.replace('/', '--')}"
        snapshot = folder / "snapshots" / ("b" * 40)
        snapshot.mkdir(parents=True)
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("b" * 40)
        for name, source in files.items():
            shutil.copy(source, snapshot / name)
        return snapshot

    gguf = lay_out(entry.repo, {entry.files["q8_0"]: tiny_m3_path}) / entry.files["q8_0"]
    # offline without the .pt files cached: dense only, and the error says how to get them
    with Llama.from_pretrained("bge-m3", quant="q8_0", cache_dir=hub) as model:
        assert not model.capabilities.sparse
        with pytest.raises(MissingHeadError, match="pull the catalogue's bge-m3"):
            model.encode_m3("x")
    lay_out("BAAI/bge-m3", {n: tiny_m3_folder / n for n in ("sparse_linear.pt", "colbert_linear.pt")})
    with Llama.from_pretrained("bge-m3", quant="q8_0", cache_dir=hub) as model:
        assert model.capabilities.sparse and model.capabilities.colbert
        assert heads_path(gguf).is_file()
        with Llama(tiny_m3_path) as converted:
            want = converted.encode_m3(TEXTS, return_colbert_vecs=True)
        got = model.encode_m3(TEXTS, return_colbert_vecs=True)
        assert got["lexical_weights"] == want["lexical_weights"]
