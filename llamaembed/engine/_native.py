"""llama.cpp's library through llama_cpp's ctypes bindings: loading, its log, its facts.

With ``engine._handles`` (the wrappers that own a model, a context or a batch) the only
code that calls llama.cpp's C API; nothing else in llamaembed touches ctypes.
``llama_cpp`` is imported on first use so that ``import llamaembed`` stays light.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, QuantizationError

__all__ = [
    "QUICK_TOKENIZE_BYTES",
    "STRIP_ACCENTS_KEY",
    "check_gguf_file",
    "devices",
    "extra_buffers",
    "ggml_version",
    "lib",
    "quantize_file",
    "quick",
    "supports_gpu_offload",
    "system_info_text",
    "tensor_functions",
]

logger = logging.getLogger(__name__)  # llama.cpp's own log, forwarded

GGUF_MAGIC = b"GGUF"
STRIP_ACCENTS_KEY = "tokenizer.ggml.normalizer.strip_accents"
_init_lock = threading.Lock()
_initialised = False
_log_callback: Any = None  # keep the ctypes callback alive for the life of the process


def _import_bindings() -> Any:
    """Return llama_cpp's ctypes bindings module without running the package's __init__.

    ``llama_cpp/__init__`` also imports the high-level Llama class, chat formats and
    jinja2 (~130 ms) that llamaembed never uses. The bindings module is loaded under a
    temporary parent package, which is then removed: a later ``import llama_cpp`` runs
    the real __init__ and reuses the already-loaded bindings.
    """
    import importlib
    import importlib.util
    import sys
    import types

    if "llama_cpp" in sys.modules:
        return importlib.import_module("llama_cpp.llama_cpp")
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("llama-cpp-python is not installed (pip install llama-cpp-python)")
    stub = types.ModuleType("llama_cpp")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__package__ = "llama_cpp"
    sys.modules["llama_cpp"] = stub
    try:
        return importlib.import_module("llama_cpp.llama_cpp")
    except Exception:
        for name in [n for n in sys.modules if n == "llama_cpp" or n.startswith("llama_cpp.")]:
            del sys.modules[name]
        return importlib.import_module("llama_cpp").llama_cpp
    finally:
        if sys.modules.get("llama_cpp") is stub:
            del sys.modules["llama_cpp"]


def lib() -> Any:
    """Return llama_cpp's bindings, initialising the backend and logging once."""
    global _initialised, _log_callback
    llama_cpp = _import_bindings()

    if not _initialised:
        with _init_lock:
            if not _initialised:

                @llama_cpp.llama_log_callback
                def _forward(level: int, text: bytes, _user: Any) -> None:
                    # llama.cpp is chatty; its lines are DEBUG records unless the user
                    # raises the "llamaembed.llama_cpp" logger's verbosity.
                    if text and logger.isEnabledFor(logging.DEBUG):
                        message = text.decode("utf-8", "replace").rstrip("\n")
                        if message:
                            logger.debug(message)

                _log_callback = _forward
                llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
                llama_cpp.llama_backend_init()
                _initialised = True
    return llama_cpp


def system_info_text() -> str:
    """Return llama.cpp's system-info line (backends and the CPU features it uses)."""
    return bytes(lib().llama_print_system_info()).decode("utf-8", "replace")


def supports_gpu_offload() -> bool:
    """Return True when this llama.cpp build has a GPU backend."""
    return bool(lib().llama_supports_gpu_offload())


_extra_buffers: tuple[bool, str] | None = None


def extra_buffers() -> tuple[bool, str]:
    """Return (once per process) whether models may use llama.cpp's extra CPU buffers."""
    global _extra_buffers
    if _extra_buffers is None:
        from .hardware import amx_kernels_compiled, extra_buffers_allowed, parse_system_info
        from .probe import REBUILD_COMMAND, probe

        info = parse_system_info(system_info_text())
        _extra_buffers = extra_buffers_allowed(info, probe=probe)
        if not _extra_buffers[0] and amx_kernels_compiled(info):
            # Once per process: this machine runs quantised models at half their speed.
            logger.warning(
                "llama.cpp's AMX kernels are off: %s. To use them: %s",
                _extra_buffers[1],
                REBUILD_COMMAND,
            )
        elif not _extra_buffers[0]:
            logger.debug("extra CPU buffer types off: %s", _extra_buffers[1])
    return _extra_buffers


# Tokenising more bytes than this takes long enough to let other threads run meanwhile.
QUICK_TOKENIZE_BYTES = 4096


@functools.cache
def quick(name: str) -> Any:
    """Return llama.cpp's function ``name`` as a ctypes function that keeps the GIL.

    ctypes lets go of the GIL around every foreign call, and taking it back can wait for
    another busy Python thread (a server's event loop) for up to the interpreter's switch
    interval (5 ms). For calls of a few microseconds that wait is all the cost, so only
    long calls (``llama_decode``, long tokenisations) let go.
    """
    llama_cpp = lib()
    shared = llama_cpp._lib
    func = getattr(ctypes.PyDLL(shared._name, handle=shared._handle), name)
    source = getattr(llama_cpp, name)
    func.argtypes, func.restype = source.argtypes, source.restype
    return func


@functools.cache
def tensor_functions() -> Any:
    """Return ggml's tensor accessors (name, element count and size, data, contiguity).

    From libggml-base, as PyDLL functions that keep the GIL: they are called inside a
    graph callback, which already holds it. None if the library is not found.
    """
    folder = Path(lib().__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        candidate = folder / name
        if candidate.exists():
            base = ctypes.PyDLL(str(candidate))
            signatures = {
                "ggml_get_name": ([ctypes.c_void_p], ctypes.c_char_p),
                "ggml_nelements": ([ctypes.c_void_p], ctypes.c_int64),
                "ggml_element_size": ([ctypes.c_void_p], ctypes.c_size_t),
                "ggml_get_data": ([ctypes.c_void_p], ctypes.c_void_p),
                "ggml_is_contiguous": ([ctypes.c_void_p], ctypes.c_bool),
            }
            for fn, (argtypes, restype) in signatures.items():
                getattr(base, fn).argtypes, getattr(base, fn).restype = argtypes, restype
            return base
    return None


@functools.cache
def _ggml() -> Any:
    """Return libggml (already loaded by libllama), its signatures declared, or None."""
    lc = lib()
    folder = Path(lc.__file__).parent / "lib"
    for name in ("libggml.so", "libggml.dylib", "ggml.dll"):
        candidate = folder / name
        if candidate.exists():
            ggml = ctypes.CDLL(str(candidate))
            ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
            ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
            ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
            for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
                getattr(ggml, fn).restype = ctypes.c_char_p
                getattr(ggml, fn).argtypes = [ctypes.c_void_p]
            ggml.ggml_backend_dev_type.restype = ctypes.c_int
            ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
            ggml.ggml_backend_dev_memory.restype = None
            ggml.ggml_backend_dev_memory.argtypes = [
                ctypes.c_void_p,
                ctypes.POINTER(ctypes.c_size_t),
                ctypes.POINTER(ctypes.c_size_t),
            ]
            for fn in ("ggml_version", "ggml_commit"):
                if hasattr(ggml, fn):
                    getattr(ggml, fn).restype = ctypes.c_char_p
            return ggml
    return None


_DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


def ggml_version() -> str:
    """Return the ggml library's version and commit (llama.cpp's compute core), if exposed."""
    ggml = _ggml()
    if ggml is None or not hasattr(ggml, "ggml_version"):
        return "unknown"
    version = (ggml.ggml_version() or b"?").decode("utf-8", "replace")
    if hasattr(ggml, "ggml_commit"):
        version += f" ({(ggml.ggml_commit() or b'?').decode('utf-8', 'replace')})"
    return version


def devices() -> list[dict[str, Any]]:
    """Return llama.cpp's compute devices: name, description, type and memory (bytes)."""
    ggml = _ggml()
    if ggml is None:
        return []
    result = []
    for i in range(int(ggml.ggml_backend_dev_count())):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        result.append(
            {
                "name": (ggml.ggml_backend_dev_name(dev) or b"").decode("utf-8", "replace"),
                "description": (ggml.ggml_backend_dev_description(dev) or b"").decode(
                    "utf-8", "replace"
                ),
                "type": _DEVICE_TYPES.get(int(ggml.ggml_backend_dev_type(dev)), "other"),
                "memory_total": int(total.value),
                "memory_free": int(free.value),
            }
        )
    return result


def check_gguf_file(path: str | os.PathLike[str]) -> Path:
    """Return the path if it is a readable file that starts with the GGUF magic, else raise."""
    file = Path(path)
    if not file.exists():
        raise ModelLoadError(f"model file not found: {file}")
    if not file.is_file():
        raise ModelLoadError(f"model path is not a file: {file}")
    try:
        with file.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {file}: {exc.strerror}") from exc
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelLoadError(
            f"{file} is not a GGUF file (it does not start with the GGUF magic); "
            "convert Hugging Face models with `llamaembed convert`"
        )
    return file


def quantize_file(source: Path, target: Path, ftype: int, n_threads: int) -> None:
    """Run ``llama_model_quantize``; raise QuantizationError when it reports failure."""
    lc = lib()
    params = lc.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = n_threads
    status = lc.llama_model_quantize(os.fsencode(source), os.fsencode(target), ctypes.byref(params))
    if status != 0:
        raise QuantizationError(
            f"llama.cpp could not quantize {source} (status {status}); is it a valid GGUF model?"
        )
