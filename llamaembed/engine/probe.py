"""Whether llama.cpp's extra CPU buffers (its AMX kernels) work on this CPU with this build.

ggml's AMX kernels for quantised weights live in one of llama.cpp's "extra" CPU buffer
types. GCC 12 miscompiles their tile set-up (llama.cpp #20824: it drops the stores that
fill the 64-byte tile configuration), and such a build dies with SIGSEGV on the first
quantised matrix product; built with ``-fno-tree-dse -fno-dse`` (as llamaembed's install
does), with GCC 13+ or clang, it is fine, and about twice as fast as F32 on those CPUs.
Which of the two a machine has cannot be told from the outside, so it is measured: once
per llama.cpp build and CPU, two child processes embed a few texts with a tiny Q8_0 model
(``engine.probe_child``), one with plain buffers and one with extra buffers. The extra
buffers are used when that child exits cleanly and its vectors match the plain ones
(cosine >= :data:`COSINE_BOUND`). The verdict is kept in llamaembed's cache, keyed on the
shared libraries' size and modification time and on the CPU's flags.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._files import atomic_path, cache_root
from .hardware import EXTRA_BUFFERS_ENV, cpu_flags

__all__ = [
    "COSINE_BOUND",
    "REBUILD_COMMAND",
    "Verdict",
    "build_key",
    "child_command",
    "judge",
    "probe",
]

PROBE_VERSION = "1"
COSINE_BOUND = 0.999
CHILD_TIMEOUT = 300  # seconds; the first run also builds the tiny model
REBUILD_COMMAND = (
    "CMAKE_ARGS=\"-DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS='-fno-tree-dse -fno-dse' "
    "-DCMAKE_CXX_FLAGS='-fno-tree-dse -fno-dse'\" pip install --force-reinstall "
    "--no-cache-dir --no-deps llama-cpp-python==0.3.36"
)


@dataclass(frozen=True)
class Verdict:
    """The probe's answer: may llama.cpp use its extra CPU buffers here, and why."""

    ok: bool
    reason: str
    cached: bool = False


def _library_files() -> list[Path]:
    """Return llama.cpp's shared libraries as llama_cpp ships them (not importing it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "lib"
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


def build_key(files: Iterable[Path] | None = None, flags: Iterable[str] | None = None) -> str:
    """Return the identity of a llama.cpp build on a CPU: its libraries and the CPU flags."""
    digest = hashlib.sha256(f"probe-v{PROBE_VERSION}".encode())
    for file in _library_files() if files is None else files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    digest.update(" ".join(sorted(cpu_flags() if flags is None else flags)).encode())
    return digest.hexdigest()[:24]


def child_command() -> list[str]:
    """Return the command of one probe child (``engine.probe_child`` on its model folder)."""
    folder = cache_root() / "probe-model"
    return [sys.executable, "-m", "llamaembed.engine.probe_child", str(folder)]


def _run(command: Sequence[str], extra_buffers: bool) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, EXTRA_BUFFERS_ENV: "1" if extra_buffers else "0"}
    return subprocess.run(
        list(command), capture_output=True, env=env, timeout=CHILD_TIMEOUT, check=False
    )


def _vectors(output: bytes) -> np.ndarray | None:
    try:
        return np.asarray(np.load(io.BytesIO(output), allow_pickle=False), dtype=np.float32)
    except (ValueError, OSError, EOFError):
        return None


def _died(returncode: int, stderr: bytes) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the probe with extra buffers died with {name}"
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"the probe with extra buffers exited with status {returncode} ({tail[0][:200]})"


def judge(reference: np.ndarray, returncode: int, stdout: bytes, stderr: bytes = b"") -> Verdict:
    """Return the verdict on one extra-buffers child, given the plain buffers' vectors."""
    if returncode != 0:
        return Verdict(False, _died(returncode, stderr))
    got = _vectors(stdout)
    if got is None or got.shape != reference.shape:
        return Verdict(False, "the probe with extra buffers wrote no vectors of the right shape")
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
    cosines = np.sum(got * reference, axis=1) / np.maximum(norms, 1e-12)
    worst = float(np.min(cosines))
    if not np.isfinite(worst) or worst < COSINE_BOUND:
        return Verdict(
            False, f"extra buffers gave other vectors than plain ones (min cosine {worst:.5f})"
        )
    return Verdict(True, f"checked on this CPU and build: vectors match (min cosine {worst:.5f})")


def _cache_file(key: str) -> Path:
    return cache_root() / "probes" / f"extra-buffers-{key}.json"


def probe(
    *,
    command: Sequence[str] | None = None,
    reference_command: Sequence[str] | None = None,
    use_cache: bool = True,
) -> Verdict:
    """Return whether extra buffers work here, running the two children unless cached.

    ``command`` runs with extra buffers on, ``reference_command`` with them off (both
    default to :func:`child_command`). A verdict is cached only for the default children.
    """
    default = command is None and reference_command is None
    key = build_key()
    cached = _cache_file(key)
    if use_cache and default and cached.exists():
        try:
            data = json.loads(cached.read_text(encoding="utf-8"))
            return Verdict(bool(data["ok"]), str(data["reason"]), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: probe again
    try:
        plain = _run(reference_command or child_command(), extra_buffers=False)
    except subprocess.TimeoutExpired:
        return Verdict(False, f"the probe could not run: it took over {CHILD_TIMEOUT} s")
    reference = _vectors(plain.stdout) if plain.returncode == 0 else None
    if reference is None:
        # Without a reference nothing can be judged: plain buffers for this process, and
        # no verdict cached, so the next process probes again.
        error = plain.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return Verdict(False, f"the probe could not run (status {plain.returncode}: {error[0]})")
    try:
        extra = _run(command or child_command(), extra_buffers=True)
        verdict = judge(reference, extra.returncode, extra.stdout, extra.stderr)
    except subprocess.TimeoutExpired:
        verdict = Verdict(False, f"the probe with extra buffers hung for {CHILD_TIMEOUT} s")
    if default:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            tmp.write_text(json.dumps({"ok": verdict.ok, "reason": verdict.reason}))
    return verdict
