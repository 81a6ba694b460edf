"""The live facts of this machine and llama.cpp build, with what the rules make of them.

``engine.hardware`` holds the rules as pure functions; this module asks llama.cpp (it
loads the library, but no model) and the CPU, and applies them. ``Llama.system_info()``
and ``llamaembed info`` show the result.
"""

from __future__ import annotations

import logging
from typing import Any

from ..params import default_threads
from . import _native
from .hardware import (
    RELEVANT_CPU_FLAGS,
    WeightChoice,
    amx_kernels_compiled,
    choose_contexts,
    choose_weight_type,
    cpu_flags,
    parse_system_info,
)

__all__ = ["GPU_BUILD_HINT", "amx_in_use", "auto_weight_type", "system_info", "warn_no_gpu_once"]

logger = logging.getLogger(__name__)

GPU_BUILD_HINT = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "--no-deps llama-cpp-python==0.3.36"
)
_gpu_warned = False


def warn_no_gpu_once() -> None:
    """Warn once that GPU layers were asked for on a build without a GPU backend."""
    global _gpu_warned
    if not _gpu_warned:
        _gpu_warned = True
        logger.warning(
            "GPU layers were asked for, but this llama-cpp-python build has no GPU backend; "
            "running on the CPU. For NVIDIA GPUs rebuild it with CUDA: %s",
            GPU_BUILD_HINT,
        )


def amx_in_use() -> bool:
    """Return True when llama.cpp runs its AMX kernels here (built in, probe passed)."""
    if "amx_int8" not in cpu_flags():
        return False  # no AMX here: nothing to ask llama.cpp (nor to probe)
    info = parse_system_info(_native.system_info_text())
    return amx_kernels_compiled(info) and _native.extra_buffers()[0]


def auto_weight_type(*, gpu: bool = False) -> WeightChoice:
    """Return what ``auto`` picks on this machine, from its CPU flags and llama.cpp build."""
    return choose_weight_type(cpu_flags(), gpu=gpu, amx=not gpu and amx_in_use())


def system_info() -> dict[str, Any]:
    """Return llama.cpp's version, backends, devices, CPU features and the ``auto`` choice."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        binding_version = version("llama-cpp-python")
    except PackageNotFoundError:  # pragma: no cover - installed from source without metadata
        binding_version = "unknown"
    text = _native.system_info_text()
    info = parse_system_info(text)
    devices = _native.devices()
    gpu = _native.supports_gpu_offload()
    flags = cpu_flags()
    choice = auto_weight_type()
    allowed, why = _native.extra_buffers()  # the rule in effect for this process
    threads = default_threads()  # what a model opened without n_threads runs on
    contexts = choose_contexts(threads)
    return {
        "llama_cpp_python": binding_version,
        "ggml": _native.ggml_version(),
        "system_info": text.strip(),
        "backends": sorted(info),
        "cpu_features": {k: v for k, v in info.get("CPU", {}).items() if v == "1"},
        "cpu_flags_relevant": [f for f in RELEVANT_CPU_FLAGS if f in flags],
        "gpu_offload": gpu,
        "devices": devices,
        "auto_type": choice.type,
        "auto_reason": choice.reason,
        "auto_type_gpu": auto_weight_type(gpu=True).type,
        "extra_cpu_buffers": allowed,
        "extra_cpu_buffers_reason": why,
        "amx_kernels_compiled": amx_kernels_compiled(info),
        "amx_in_use": amx_kernels_compiled(info) and allowed,
        "threads_default": threads,
        "contexts_default": contexts,
    }
