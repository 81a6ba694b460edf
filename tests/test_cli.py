"""The command line, through click's CliRunner, on real models."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from texts import stdlib_sentences

from llamaembed.cli import main

TOPICS = {
    "kitchen.md": "# Baking bread\nKnead the dough for ten minutes, let it rise for an hour, "
                  "then bake at 220 degrees until the crust is golden.",
    "astronomy.txt": "Jupiter is the largest planet of the solar system; its Great Red Spot "
                     "is a storm larger than the Earth.",
    "finance.rst": "Compound interest means the interest you earn also earns interest; "
                   "start saving early for retirement.",
    "health.md": "Regular aerobic exercise such as running or cycling strengthens the heart "
                 "and lowers blood pressure.",
    "networking.py": '"""Open a TCP socket, connect to the server on port 8080 and send an '
                     'HTTP GET request."""\n',
}
QUERIES = {
    "how do I make a loaf at home": "kitchen.md",
    "biggest planet and its giant storm": "astronomy.txt",
    "putting money aside for retirement": "finance.rst",
    "cardio workouts are good for the cardiovascular system": "health.md",
    "sending a web request over a network connection": "networking.py",
}


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "command",
    [[], ["convert"], ["quantize"], ["embed"], ["rerank"], ["index"], ["search"], ["models"],
     ["models", "list"], ["models", "pull"], ["models", "show"], ["models", "paths"], ["info"]],
)
def test_help(command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0 and "Usage:" in out


def _one_error_line(code: int, err: str) -> str:
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def test_convert_and_quantize_errors(tmp_path: Path, tiny_encoder_folder: Path,
                                     minilm_f16_path: Path, llama_cpp_converter: Path) -> None:
    out = tmp_path / "out.gguf"
    line = _one_error_line(*run("convert", str(tmp_path / "missing"), "-o", str(out))[::2])
    assert "not found" in line
    config = json.loads((tiny_encoder_folder / "config.json").read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    line = _one_error_line(*run("convert", str(bad), "-o", str(out), "--converter", "llamaembed")[::2])
    assert "GPT2LMHeadModel" in line and "BertModel" in line
    line = _one_error_line(*run("convert", str(bad), "-o", str(out))[::2])
    assert "llama.cpp's converter failed" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (empty / name).write_bytes((tiny_encoder_folder / name).read_bytes())
    assert "no model weights" in _one_error_line(*run("convert", str(empty), "-o", str(out))[::2])
    line = _one_error_line(*run("quantize", str(minilm_f16_path), str(out), "q3_xyz")[::2])
    assert "q4_k_m" in line
    notgguf = tmp_path / "x.gguf"
    notgguf.write_text("hello")
    assert "not a GGUF" in _one_error_line(*run("quantize", str(notgguf), str(out), "q8_0")[::2])
    line = _one_error_line(*run("quantize", str(minilm_f16_path), "/proc/x.gguf", "q8_0")[::2])
    assert "cannot write" in line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_convert_quantize_embed_roundtrip(tmp_path: Path, tiny_encoder_folder: Path) -> None:
    f16 = tmp_path / "tiny-f16.gguf"
    code, out, _ = run("convert", str(tiny_encoder_folder), "-o", str(f16), "--name", "tiny")
    assert code == 0 and "wrote" in out and f16.exists()
    q8 = tmp_path / "tiny-q8.gguf"
    assert run("quantize", str(f16), str(q8), "q8_0")[0] == 0
    code, out, _ = run("embed", "hello world", "the cat", "--model", str(q8))
    vectors = np.array(json.loads(out))
    assert code == 0 and vectors.shape == (2, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    code, out, _ = run("embed", "-", "--model", str(q8), input="one\ntwo\n\nthree\n")
    assert len(json.loads(out)) == 3
    npy = tmp_path / "v.npy"
    assert run("embed", "hi", "--model", str(q8), "--format", "npy", "-o", str(npy))[0] == 0
    assert np.load(npy).shape == (1, 64)
    raw = CliRunner().invoke(main, ["embed", "hi", "--model", str(q8), "--format", "npy"])
    assert np.load(io.BytesIO(raw.stdout_bytes)).shape == (1, 64)


def test_rerank_command(tiny_reranker_path: Path, tiny_encoder_path: Path) -> None:
    code, out, _ = run("rerank", "rust memory", "the cat runs", "rust code is safe",
                       "--model", str(tiny_reranker_path), "--json")
    results = json.loads(out)
    assert code == 0 and sorted(r["index"] for r in results) == [0, 1]
    assert results[0]["score"] >= results[1]["score"]
    line = _one_error_line(*run("rerank", "q", "d", "--model", str(tiny_encoder_path))[::2])
    assert "bi-encoder" in line


def test_index_and_search_a_folder(tmp_path: Path, minilm_f16_path: Path,
                                   tiny_reranker_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    for i, sentence in enumerate(stdlib_sentences(200)):
        (docs / ("sub" if i % 2 else ".") / f"note{i:03d}.txt").write_text(sentence)
    for name, text in TOPICS.items():
        (docs / name).write_text(text)
    (docs / "image.png").write_bytes(b"\x89PNG\x00\x00")  # not a text suffix: ignored
    (docs / "blob.txt").write_bytes(b"binary\x00data")  # NUL bytes: skipped as binary
    db = tmp_path / "db"
    code, out, err = run("index", str(docs), "--model", str(minilm_f16_path), "--db", str(db))
    assert code == 0, err
    assert "indexed 205 files" in out and "1 binary skipped" in out
    for query, expected in QUERIES.items():
        code, out, _ = run("search", query, "--db", str(db), "--json", "-k", "3")
        hits = json.loads(out)
        assert code == 0 and Path(hits[0]["metadata"]["source"]).name == expected, (query, hits)
    code, out, _ = run("search", "biggest planet", "--db", str(db), "-k", "2")
    assert code == 0 and "astronomy.txt" in out.splitlines()[0]
    code, out, _ = run("search", "biggest planet", "--db", str(db), "--no-hybrid",
                       "--rerank", str(tiny_reranker_path), "--json")
    assert code == 0 and len(json.loads(out)) == 10
    # re-running skips unchanged files; a changed file is re-indexed, a deleted one removed
    (docs / "finance.rst").write_text("Stock markets go up and down.")
    (docs / "health.md").unlink()
    code, out, _ = run("index", str(docs), "--model", str(minilm_f16_path), "--db", str(db))
    assert "indexed 1 files" in out and "203 unchanged" in out and "1 removed" in out
    code, out, _ = run("search", "retirement savings interest", "--db", str(db), "--json")
    assert all("Compound interest" not in h["text"] for h in json.loads(out))


def test_search_errors(tmp_path: Path) -> None:
    line = _one_error_line(*run("search", "q", "--db", str(tmp_path / "none"))[::2])
    assert "no index" in line
    code, _, err = run("index", str(tmp_path / "missing-folder"))
    assert code == 2 and "does not exist" in err


def test_models_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLAMAEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run("models", "show", "bge-small-en-v1.5")
    assert code == 0 and "CompendiumLabs/bge-small-en-v1.5-gguf" in out and "cls" in out
    line = _one_error_line(*run("models", "show", "bge-smal")[::2])
    assert "did you mean" in line and "bge-small-en-v1.5" in line
    code, out, _ = run("models", "list")
    assert code == 0 and "nomic-embed-text-v1.5" in out and "not cached" in out
    line = _one_error_line(*run("models", "pull", "bge-small-en-v1.5")[::2])
    assert "cannot download" in line
    code, out, _ = run("models", "paths")
    assert str(tmp_path / "cache") in out
