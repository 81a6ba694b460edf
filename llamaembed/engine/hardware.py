"""What the hardware offers and what follows from it: the weight-type rule, the AMX rule.

The rules here are pure functions of CPU flags and llama.cpp's system-info line, so they
are tested on given inputs without the machine they describe; ``engine.system`` gathers
the live facts and applies them.

Measured facts behind the rule (all-MiniLM-L6-v2 converted by llamaembed, 2 threads,
short texts/s and long texts/s; benchmarks/README.md has the tables and commands):

- Intel Xeon with AMX (lscpu: amx_bf16, amx_int8, amx_tile), GCC 12.2 with
  -fno-tree-dse -fno-dse, 2026-11-29: Q8_0 through AMX 922 / 86.8, F32 445 / 44.7
  (fastembed int8 896 / 37.2, fp32 416 / 24.2); Q8_0 keeps a mean cosine of 0.99955 to
  F32. Where the AMX kernels work (``engine.probe`` checks), Q8_0 is twice F32.
  Re-measured 2026-12-05 on the same class (benchmarks/short_texts.py, two contexts):
  MiniLM short texts/s Q8_0 1001, Q4_0 993, Q6_K 812, IQ4_NL 563, F16 470, Q4_K_M 455,
  BF16 408, F32 390; a bge-base-sized BERT Q8_0 190, Q4_0 185, Q4_K_M 139, Q6_K 95,
  F32 78, F16 69, BF16 65. Q4_0 and IQ4_NL fail the quality gate (cosine 0.967 / 0.978
  to F32 on MiniLM), so Q8_0 stays; n_batch 64 / 128 / 256 gave 734 / 935 / 822.
- The same CPUs without working AMX kernels, 2026-11-23: F32 383 / 38.6, F16 353 / 36.0,
  BF16 328 / 34.3; the same order at one thread (210, 193, 180). F32 is fastest there,
  BF16 slowest: ggml's BF16 path gains nothing on these CPUs.
- AMD EPYC (Zen 4: AVX-512, VNNI, AVX512_BF16, no AMX): BF16 901, F16 647, F32 580,
  Q8_0 573 (short; long: BF16 117, F16 87). BF16 is fastest.
- AVX2-only machines: F16 was the fastest type measured (BF16 has no dot product there).

So ``auto`` picks Q8_0 where llama.cpp's AMX kernels are in use, F32 on an AMX CPU
without them, BF16 where the CPU has AVX512_BF16 without AMX, F16 otherwise. Other
quantised types (Q4_K_M, ...) stay explicit choices for memory-bound deployments.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AUTO_TYPES",
    "FULL_QUALITY_TYPES",
    "RELEVANT_CPU_FLAGS",
    "WeightChoice",
    "amx_kernels_compiled",
    "choose_contexts",
    "choose_weight_type",
    "cpu_flags",
    "extra_buffers_allowed",
    "parse_system_info",
]

FULL_QUALITY_TYPES = ("bf16", "f16", "f32")
# What auto may pick: the full-quality types, and Q8_0 where AMX runs it (cosine 0.9996).
AUTO_TYPES = (*FULL_QUALITY_TYPES, "q8_0")
# The CPU flags that decide llama.cpp's speed (and the weight type), in the order shown.
RELEVANT_CPU_FLAGS = (
    "avx2", "f16c", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip
EXTRA_BUFFERS_ENV = "LLAMAEMBED_CPU_EXTRA_BUFFERS"


@dataclass(frozen=True)
class WeightChoice:
    """The weight type ``auto`` picks, and the reason in words."""

    type: str
    reason: str


@functools.cache
def _machine_cpu_flags() -> frozenset[str]:
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return frozenset()


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """Return the CPU's feature flags (lower case) from /proc/cpuinfo, or an empty set.

    With no text, this machine's flags (read once per process).
    """
    if cpuinfo is None:
        return _machine_cpu_flags()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.lower().split())
    return frozenset()


def choose_weight_type(
    flags: Iterable[str], *, gpu: bool = False, amx: bool = False
) -> WeightChoice:
    """Return the weight type that runs fastest at full quality on this hardware.

    ``amx``: llama.cpp's AMX kernels are built in and in use here (the probe passed);
    ``engine.system.auto_weight_type`` supplies it from the live facts.
    """
    present = {flag.lower() for flag in flags}
    if gpu:
        return WeightChoice("f16", "layers are offloaded to a GPU, whose kernels favour F16")
    if amx and "amx_int8" in present:
        return WeightChoice(
            "q8_0",
            "llama.cpp's AMX kernels work on this CPU: Q8_0 through AMX measured twice F32 "
            "(922 vs 445 short texts/s) at a mean cosine of 0.99955 to F32",
        )
    if "amx_bf16" in present:
        return WeightChoice(
            "f32",
            "the CPU has AMX but llama.cpp's AMX kernels are not in use; there F32 measured "
            "fastest (F32 383, F16 353, BF16 328 short texts/s)",
        )
    if "avx512_bf16" in present:
        return WeightChoice(
            "bf16",
            "the CPU has AVX512_BF16 without AMX (e.g. AMD Zen 4): native BF16 dot products "
            "measured fastest (BF16 901, F16 647, F32 580 short texts/s)",
        )
    if "f16c" in present or "avx2" in present:
        return WeightChoice(
            "f16",
            "the CPU has no BF16 dot products: F16 (converted with F16C) is the fastest "
            "full-quality type measured there",
        )
    return WeightChoice("f16", "no CPU features known: F16 halves memory at full quality")


def choose_contexts(threads: int, *, gpu: bool = False) -> int:
    """Return how many llama.cpp contexts a batch of several micro-batches is spread over.

    Measured on two cores (benchmarks/README.md, "Short texts and the CPU's fastest type"):
    two contexts of one thread beat one of two threads on every model and batch measured,
    short texts most (MiniLM Q8_0 with AMX 1.39x, a bge-base-sized BERT 1.07x). Beyond
    two cores the rule keeps two contexts, each with half the threads (not yet measured
    on more cores). A GPU runs one context: its kernels are not the bottleneck here.
    """
    if gpu or threads < 2:
        return 1
    return 2


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """Return llama.cpp's system-info line as {backend: {feature: value}}."""
    result: dict[str, dict[str, str]] = {}
    for part in re.split(r"\|\s*(?=[A-Za-z][\w ]*:\s)", text):
        name, sep, rest = part.partition(":")
        if not sep:
            continue
        features: dict[str, str] = {}
        for item in rest.split("|"):
            key, eq, value = item.partition("=")
            if eq and key.strip():
                features[key.strip()] = value.strip()
        result[name.strip()] = features
    return result


def amx_kernels_compiled(info: dict[str, dict[str, str]]) -> bool:
    """Return True when the llama.cpp build runs ggml's AMX kernels for quantised weights."""
    return info.get("CPU", {}).get("AMX_INT8") == "1"


def extra_buffers_allowed(
    info: dict[str, dict[str, str]],
    environ: dict[str, str] | None = None,
    probe: Callable[[], Any] | None = None,
) -> tuple[bool, str]:
    """Return whether llama.cpp may repack weights into its extra CPU buffers, and why.

    ggml's AMX path loads its tile configuration through ``_tile_loadconfig``; GCC 12's
    header declares that asm as reading 8 bytes, so GCC drops the stores that fill the
    rest of the 64-byte configuration and ``ldtilecfg`` loads garbage: SIGSEGV or SIGILL
    on the first quantised matmul (llama.cpp #20824). pip builds llama.cpp with the
    system compiler and ``-march=native``, so an AMX CPU may or may not have a working
    build. On a build with AMX kernels ``probe()`` (``engine.probe.probe``: a verdict with
    ``ok`` and ``reason``) decides; without a probe such a build stays off. A build without
    AMX kernels keeps llama.cpp's default. ``LLAMAEMBED_CPU_EXTRA_BUFFERS=1`` or ``=0``
    overrides all of it.
    """
    env = os.environ if environ is None else environ
    forced = env.get(EXTRA_BUFFERS_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True, f"{EXTRA_BUFFERS_ENV}=1"
    if forced in ("0", "false", "no", "off"):
        return False, f"{EXTRA_BUFFERS_ENV}=0"
    if not amx_kernels_compiled(info):
        return True, "llama.cpp's default (this build has no AMX kernels)"
    if probe is None:
        return False, (
            "this llama.cpp build has AMX kernels, which GCC 12 miscompiles unless built "
            "with -fno-tree-dse -fno-dse, and no probe was run"
        )
    verdict = probe()
    if verdict.ok:
        return True, f"AMX kernels {verdict.reason}"
    return False, (
        f"AMX kernels refused: {verdict.reason} (llama.cpp #20824: GCC 12 miscompiles their "
        "tile set-up); rebuild llama-cpp-python with -fno-tree-dse -fno-dse, GCC 13+ or clang"
    )
