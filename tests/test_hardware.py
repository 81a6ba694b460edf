"""Hardware rules on given CPU flags and system-info lines; GPU fallback and the AMX guard live."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llamaembed import Llama, LlamaParams
from llamaembed.engine import hardware
from llamaembed.engine.hardware import (
    choose_weight_type,
    cpu_flags,
    extra_buffers_allowed,
    parse_system_info,
)
from llamaembed.engine.system import auto_weight_type

AVX2_ONLY = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2".split()
ZEN4 = AVX2_ONLY + "avx512f avx512bw avx512_vnni avx512_bf16".split()
SAPPHIRE_RAPIDS = ZEN4 + "avx512_fp16 amx_tile amx_int8 amx_bf16".split()
SPR_BUILD = ("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | "
             "AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
             "REPACK = 1 | ")
CUDA_BUILD = ("CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "
              "CPU : SSE3 = 1 | AVX2 = 1 | F16C = 1 | OPENMP = 1 | REPACK = 1 | ")


def test_cpu_flags_from_cpuinfo_text() -> None:
    text = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu AVX2 avx512_bf16\n\nprocessor\t: 1\n"
    assert cpu_flags(text) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cpu_flags("no flags here") == frozenset()
    assert cpu_flags("Features\t: fp asimd bf16\n") == frozenset({"fp", "asimd", "bf16"})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(AVX2_ONLY, "f16"), (ZEN4, "bf16"), (SAPPHIRE_RAPIDS, "f32"), ([], "f16"),
     (["amx_bf16"], "f32"), (["AVX512_BF16"], "bf16")],
)
def test_auto_weight_type_rule(flags: list[str], expected: str) -> None:
    choice = choose_weight_type(flags)
    assert choice.type == expected
    assert choice.reason  # says why, in words
    assert choose_weight_type(flags, gpu=True).type == "f16"


def test_auto_picks_q8_0_only_where_amx_kernels_run() -> None:
    amx = choose_weight_type(SAPPHIRE_RAPIDS, amx=True)
    assert amx.type == "q8_0" and "AMX" in amx.reason
    assert choose_weight_type(SAPPHIRE_RAPIDS, amx=False).type == "f32"  # refused build
    assert choose_weight_type(ZEN4, amx=True).type == "bf16"  # no amx_int8: never q8_0
    assert choose_weight_type(SAPPHIRE_RAPIDS, amx=True, gpu=True).type == "f16"
    assert set(hardware.AUTO_TYPES) == {*hardware.FULL_QUALITY_TYPES, "q8_0"}


def test_parse_system_info_cpu_and_cuda() -> None:
    info = parse_system_info(SPR_BUILD)
    assert list(info) == ["CPU"]
    assert info["CPU"]["AMX_INT8"] == "1" and info["CPU"]["AVX512_BF16"] == "1"
    both = parse_system_info(CUDA_BUILD)
    assert set(both) == {"CUDA", "CPU"}
    assert both["CUDA"]["ARCHS"] == "900" and both["CPU"]["AVX2"] == "1"


def test_extra_buffers_rule() -> None:
    amx = parse_system_info(SPR_BUILD)
    allowed, why = extra_buffers_allowed(amx, environ={})
    assert not allowed and "GCC 12" in why
    assert extra_buffers_allowed(amx, environ={"LLAMAEMBED_CPU_EXTRA_BUFFERS": "1"})[0]
    plain = parse_system_info(CUDA_BUILD)
    assert extra_buffers_allowed(plain, environ={})[0]
    assert not extra_buffers_allowed(plain, environ={"LLAMAEMBED_CPU_EXTRA_BUFFERS": "0"})[0]


def test_system_info_live() -> None:
    info = Llama.system_info()
    assert info["llama_cpp_python"] == "0.3.36"
    assert info["ggml"] != "unknown" and "(" in info["ggml"]  # version (commit)
    assert "CPU" in info["backends"]
    assert any(d["type"] == "cpu" for d in info["devices"])
    assert info["auto_type"] in hardware.AUTO_TYPES and info["auto_reason"]
    assert info["auto_type"] == auto_weight_type().type
    assert info["amx_in_use"] == (info["amx_kernels_compiled"] and info["extra_cpu_buffers"])
    amx_here = "amx_int8" in cpu_flags() and info["extra_cpu_buffers"]
    assert (info["auto_type"] == "q8_0") == bool(amx_here and "AMX_INT8" in info["cpu_features"])
    assert isinstance(info["gpu_offload"], bool)


def test_quantised_model_runs_on_this_build(minilm_quant_path, minilm: Llama) -> None:  # type: ignore[no-untyped-def]
    # In a fresh process (a crash must not take the suite down): Q8_0 and Q4_K_M embed and
    # agree with F16. Before the AMX guard this died with SIGSEGV/SIGILL on AMX machines.
    reference = minilm.embed_texts(["the cat sat on the mat", "rust is memory safe"])
    # Bounds sit below what was measured here (min cosine Q8_0 0.9997, Q4_K_M 0.993, Q4_0 0.968).
    for qtype, bound in (("q8_0", 0.998), ("q4_k_m", 0.97), ("q4_0", 0.95)):
        path = minilm_quant_path(qtype)
        code = ("import sys, numpy as np; from llamaembed import Llama\n"
                f"m = Llama({str(path)!r}, n_threads=2)\n"
                "v = m.embed_texts(['the cat sat on the mat', 'rust is memory safe'])\n"
                "np.save(sys.stdout.buffer, v)\n")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
        assert result.returncode == 0, (qtype, result.returncode, result.stderr[-2000:])
        vectors = np.load(io.BytesIO(result.stdout))
        cosines = np.sum(vectors * reference, axis=1)
        assert cosines.min() > bound, (qtype, cosines)


def test_gpu_params_validation() -> None:
    params = LlamaParams("m.gguf")
    assert params.n_gpu_layers == 0 and params.main_gpu == 0
    assert params.with_n_gpu_layers(-1).n_gpu_layers == -1
    assert params.with_main_gpu(1).main_gpu == 1
    for bad in (-2, 1.5, True, "all"):
        with pytest.raises(ValueError, match="n_gpu_layers"):
            LlamaParams("m.gguf", n_gpu_layers=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="main_gpu"):
        LlamaParams("m.gguf", main_gpu=-1)


def test_gpu_layers_on_cpu_build_warn_once_and_run_on_cpu(
    minilm_f16_path: Path, minilm: Llama, caplog: pytest.LogCaptureFixture
) -> None:
    if Llama.system_info()["gpu_offload"]:
        pytest.skip("this llama.cpp build has a GPU backend (see tests/test_gpu.py)")
    from llamaembed.engine import llama as llama_module

    llama_module._gpu_warned = False
    with caplog.at_level(logging.WARNING, logger="llamaembed"):
        with Llama(minilm_f16_path, n_gpu_layers=-1) as first, \
                Llama(minilm_f16_path, n_gpu_layers=4) as second:
            vectors = first.embed_texts(["hello there", "a second text"])
            assert first.n_gpu_layers == 0 and second.n_gpu_layers == 0
    warnings = [r.getMessage() for r in caplog.records if "GPU" in r.getMessage()]
    assert len(warnings) == 1 and "DGGML_CUDA=on" in warnings[0]
    expected = minilm.embed_texts(["hello there", "a second text"])
    assert np.allclose(vectors, expected, atol=1e-6)


def test_info_command() -> None:
    import json

    from click.testing import CliRunner

    from llamaembed.cli import main

    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    auto = auto_weight_type().type
    assert f"auto weight type  {auto}:" in result.stdout
    assert "llama-cpp-python  0.3.36" in result.stdout and "GPU offload" in result.stdout
    amx_line = next(line for line in result.stdout.splitlines() if line.startswith("AMX kernels"))
    assert ("in use" in amx_line) == (auto == "q8_0")
    facts = json.loads(CliRunner().invoke(main, ["info", "--json"]).stdout)
    assert facts["auto_type"] == auto and facts["devices"]
    threads = facts["threads_default"]
    assert facts["contexts_default"] == (2 if threads >= 2 else 1)
    if threads == 2:  # two cores: two contexts of one thread each, a query on both
        assert "batches           1 + 1 threads (a context each); a single query: 2" in (
            result.stdout
        )


def test_cli_gpu_layers_on_cpu_build(minilm_f16_path: Path, minilm: Llama) -> None:
    import json

    from click.testing import CliRunner

    from llamaembed.cli import main

    if Llama.system_info()["gpu_offload"]:
        pytest.skip("this llama.cpp build has a GPU backend")
    result = CliRunner().invoke(main, ["embed", "hello there", "--model", str(minilm_f16_path),
                                       "--gpu-layers", "-1"])
    assert result.exit_code == 0, result.output
    vector = np.array(json.loads(result.stdout))[0]
    assert float(vector @ minilm.embed("hello there")) > 0.99999
    bad = CliRunner().invoke(main, ["embed", "x", "--model", str(minilm_f16_path),
                                    "--gpu-layers", "-5"])
    assert bad.exit_code == 2 and "gpu-layers" in bad.stderr
