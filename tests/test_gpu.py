"""GPU tests: they run wherever llama-cpp-python was built with a GPU backend (skipped elsewhere).

Issue 10: on a CUDA build, a process that imported numpy before llama_cpp segfaulted in
``llama_model_load_from_file``; these tests load models in fresh processes in both import
orders, and compare offloaded embeddings with the CPU's.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llamaembed import Llama

pytestmark = pytest.mark.gpu

TEXTS = ["the cat sat on the mat", "Rust is memory-safe", "a longer text " * 40]


@pytest.fixture(scope="module", autouse=True)
def _gpu_build() -> None:
    if not Llama.system_info()["gpu_offload"]:
        pytest.skip("llama-cpp-python has no GPU backend here (CPU-only build)")


def _embed_in_fresh_process(path: Path, first_import: str, n_gpu_layers: int) -> np.ndarray:
    code = (f"import {first_import}\n"
            "import sys, numpy as np\nfrom llamaembed import Llama\n"
            f"m = Llama({str(path)!r}, n_gpu_layers={n_gpu_layers})\n"
            f"np.save(sys.stdout.buffer, m.embed_texts({TEXTS!r}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert result.returncode == 0, (first_import, result.returncode, result.stderr[-3000:])
    return np.load(io.BytesIO(result.stdout))


@pytest.mark.parametrize("first_import", ["numpy", "llama_cpp"])
def test_any_import_order_loads_on_gpu(minilm_f16_path: Path, first_import: str) -> None:
    vectors = _embed_in_fresh_process(minilm_f16_path, first_import, n_gpu_layers=-1)
    assert vectors.shape == (3, 384)


def test_offloaded_embeddings_match_cpu(minilm_f16_path: Path, minilm: Llama) -> None:
    gpu = _embed_in_fresh_process(minilm_f16_path, "numpy", n_gpu_layers=-1)
    cpu = minilm.embed_texts(TEXTS)
    assert float(np.min(np.sum(gpu * cpu, axis=1))) >= 0.9999


def test_info_lists_the_gpu() -> None:
    from click.testing import CliRunner

    from llamaembed.cli import main

    facts = json.loads(CliRunner().invoke(main, ["info", "--json"]).stdout)
    assert facts["gpu_offload"] and any(d["type"] == "gpu" for d in facts["devices"])
