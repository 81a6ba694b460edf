"""llama.cpp's own converter (``convert_hf_to_gguf.py``) for the models ours does not cover.

Decoder embedders and rerankers (Qwen3-Embedding, Qwen3-Reranker, gte-Qwen2,
EmbeddingGemma, …) are converted by the script llama.cpp ships, which knows their
architectures, their tokenizers and Qwen3-Reranker's yes/no rank head. It is not in the
llama-cpp-python wheel, only in its source distribution: ``converter_dir`` finds it
($LLAMAEMBED_LLAMA_CPP_CONVERTER, or llamaembed's cache), and ``fetch_converter`` takes
it from the sdist of the installed llama-cpp-python version (``pip download``, from the
package registry; the script, ``conversion/`` and ``gguf-py/`` only, about 3 MB).

The script needs torch and transformers (``pip install 'llamaembed[convert]'``) and runs
in a child process, so a failure in it is a ``ConversionError`` here, never a crash.

``pre_tokenizer``: llama.cpp recognises a BPE tokenizer by the hash of how it splits a
fixed text, and refuses one it does not know. A tokenizer whose splitting equals a known
one's (a retrained or trimmed vocabulary on the same pre-tokenizer) is registered under
that name (e.g. ``"qwen2"``); the hash and the name are logged.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .._files import cache_root
from ..errors import ConversionError

__all__ = [
    "LLAMA_CPP_OUTTYPES",
    "convert_with_llama_cpp",
    "converter_dir",
    "fetch_converter",
]

logger = logging.getLogger(__name__)

LLAMA_CPP_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
_SCRIPT = "convert_hf_to_gguf.py"
_KEEP = (_SCRIPT, "conversion/", "gguf-py/gguf/", "LICENSE")
_ENV = "LLAMAEMBED_LLAMA_CPP_CONVERTER"

# Runs in the child: llama.cpp's converter with its own gguf-py, plus the registered
# pre-tokenizer name for a hash it does not know.
_BOOTSTRAP = """
import json, logging, sys
folder, fallback, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, folder)
sys.path.insert(1, folder + "/gguf-py")
import convert_hf_to_gguf as entry
from conversion import base
if fallback:
    original = base.TextModel.get_vocab_base_pre
    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            logging.getLogger("llamaembed").warning(
                "unknown BPE pre-tokenizer; registered as %r", fallback)
            return fallback
    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [entry.__file__, *args]
entry.main()
"""


def _llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConversionError("llama-cpp-python is not installed") from exc


def _default_dir() -> Path:
    return cache_root() / "llama.cpp-converter" / _llama_cpp_version()


def converter_dir(*, fetch: bool = True) -> Path:
    """Return the folder holding llama.cpp's ``convert_hf_to_gguf.py``; fetch it if missing.

    $LLAMAEMBED_LLAMA_CPP_CONVERTER names a folder of one's own (a llama.cpp checkout, or
    ``vendor/llama.cpp`` of an unpacked sdist); otherwise llamaembed's cache holds it.
    """
    env = os.environ.get(_ENV)
    folder = Path(env).expanduser() if env else _default_dir()
    if (folder / _SCRIPT).is_file():
        return folder
    if env and not fetch:
        raise ConversionError(f"${_ENV} is {env}, which holds no {_SCRIPT}")
    if not fetch:
        raise ConversionError(f"llama.cpp's converter is not in {folder}")
    return fetch_converter(folder)


def _wanted(name: str) -> str | None:
    """Return the path under vendor/llama.cpp/ of an sdist member to keep, else None."""
    marker = "/vendor/llama.cpp/"
    if marker not in name:
        return None
    rest = name.split(marker, 1)[1]
    if rest.startswith(("/", "..")) or "/../" in f"/{rest}/":
        return None
    return rest if any(rest == k or rest.startswith(k) for k in _KEEP) else None


def fetch_converter(folder: str | os.PathLike[str] | None = None) -> Path:
    """Unpack llama.cpp's converter from the llama-cpp-python sdist into ``folder``; return it.

    The sdist of the installed version comes from the package registry (``pip download``).
    The folder appears complete or not at all.
    """
    target = Path(folder) if folder is not None else _default_dir()
    version = _llama_cpp_version()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "-d", scratch,
            f"llama-cpp-python=={version}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = list(Path(scratch).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ConversionError(
                f"could not download the llama-cpp-python {version} sdist for llama.cpp's "
                f"converter: {done.stderr.strip()[-500:]}; or set ${_ENV} to a folder holding "
                f"{_SCRIPT}"
            )
        unpacked = Path(scratch) / "converter"
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                rest = _wanted(member.name)
                if rest is None or not member.isfile():
                    continue
                out = unpacked / rest
                out.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with source, open(out, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        if not (unpacked / _SCRIPT).is_file():
            raise ConversionError(f"the llama-cpp-python {version} sdist has no {_SCRIPT}")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    logger.info("llama.cpp's converter unpacked into %s", target)
    return target


def _needs(folder: Path) -> list[str]:
    """Return the Python packages llama.cpp's converter needs that are missing."""
    wanted = ["torch", "transformers", "safetensors", "numpy"]
    if (folder / "tokenizer.model").is_file():
        wanted.append("sentencepiece")
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def _has_dense_modules(folder: Path) -> bool:
    modules = folder / "modules.json"
    if not modules.is_file():
        return False
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(str(m.get("type", "")).endswith("Dense") for m in entries)


def convert_with_llama_cpp(
    folder: Path,
    target: Path,
    *,
    outtype: str = "f16",
    pre_tokenizer: str | None = None,
) -> Path:
    """Convert a Hugging Face folder with llama.cpp's converter into ``target``; return it.

    sentence-transformers Dense modules (EmbeddingGemma's projections) go in too. The
    file appears only when complete.
    """
    if outtype not in LLAMA_CPP_OUTTYPES:
        raise ConversionError(
            f"llama.cpp's converter writes {', '.join(LLAMA_CPP_OUTTYPES)}, not {outtype!r}; "
            "quantise the result with `llamaembed quantize`"
        )
    missing = _needs(folder)
    if missing:
        raise ConversionError(
            f"llama.cpp's converter needs {', '.join(missing)}: pip install 'llamaembed[convert]'"
        )
    script_dir = converter_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    args = [str(folder), "--outfile", str(partial), "--outtype", outtype]
    if _has_dense_modules(folder):
        args.append("--sentence-transformers-dense-modules")
    command = [sys.executable, "-c", _BOOTSTRAP, str(script_dir), pre_tokenizer or "",
               json.dumps(args)]  # fmt: skip
    env = {**os.environ, "NO_LOCAL_GGUF": "1", "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0 or not partial.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            last = lines[-1].strip() if lines else f"exit status {done.returncode}"
            raise ConversionError(f"llama.cpp's converter failed on {folder}: {last}")
        for line in done.stderr.splitlines():
            if "registered as" in line or "chkhsh" in line:
                logger.warning("%s", line)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
