"""Every example runs as a script, offline, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("examples-home")
    return {**os.environ, "LLAMAEMBED_CACHE": str(home / "cache"), "HF_HOME": str(home / "hf"),
            "HF_HUB_OFFLINE": "1"}


def run(env: dict[str, str], script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_embed_one(env: dict[str, str]) -> None:
    out = run(env, "embed_one.py", "hello world")
    assert "dimensions: 384" in out and "norm: 1.0000" in out


def test_semantic_search(env: dict[str, str]) -> None:
    out = run(env, "semantic_search.py", "which animal purrs")
    assert out.splitlines()[0].endswith("Cats purr when they are content and sometimes when "
                                        "they are stressed.")


def test_rerank(env: dict[str, str], tiny_reranker_path: Path) -> None:
    out = run(env, "rerank.py", "--reranker", str(tiny_reranker_path), "coffee and sleep")
    lines = out.splitlines()
    assert lines[0] == "embedding ranking:" and "after reranking:" in lines
    assert len([line for line in lines if line.startswith("  ")]) == 8


def test_rag(env: dict[str, str]) -> None:
    out = run(env, "rag.py", "What does the XK-42 relay do?")
    passages = out.split("passages used:")[1].split("answer:")[0]
    assert "XK-42" in passages
    answer = out.split("answer:")[1].strip()
    assert len(answer) > 10


def test_static_ingest(env: dict[str, str], tiny_reranker_path: Path) -> None:
    out = run(env, "static_ingest.py", "how do I compress a file")
    assert "distilled" in out.splitlines()[0]
    static_top = out.split("top candidates:")[1].splitlines()[1]
    assert "compress" in static_top  # gzip.compress / zlib.compress
    rescored = out.split("after rescoring with the teacher:")[1].splitlines()[1:6]
    assert len(rescored) == 5 and "compress" in rescored[0]
    folder = Path(env["LLAMAEMBED_CACHE"]) / "static" / "default"
    out = run(env, "static_ingest.py", "--static", str(folder), "--reranker",
              str(tiny_reranker_path), "compress")
    assert "distilled" not in out and "after reranking with the cross-encoder:" in out
