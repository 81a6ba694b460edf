"""The extra-buffers (AMX) probe: real child processes that pass, die or disagree.

The children are real processes on any machine: the probe's own child (the tiny Q8_0
model, plain and with extra buffers), one that kills itself with SIGSEGV (what a GCC 12
build does on an AMX CPU) and one that writes vectors other than the model's.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from test_hardware import SPR_BUILD

from llamaembed.engine import _native, probe
from llamaembed.engine.hardware import extra_buffers_allowed, parse_system_info
from llamaembed.engine.probe_child import PROBE_TEXTS

SEGFAULT = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
OTHER_VECTORS = [
    sys.executable,
    "-c",
    "import sys, numpy as np; "
    f"np.save(sys.stdout.buffer, np.random.default_rng(0).standard_normal(({len(PROBE_TEXTS)}, "
    "64)).astype(np.float32))",
]


def test_a_working_build_passes_and_is_cached(isolated_llamaembed_cache: Path) -> None:
    # On an AMX machine an earlier model load may have probed already: start afresh.
    for old in (isolated_llamaembed_cache / "probes").glob("*.json"):
        old.unlink()
    first = probe.probe()
    assert first.ok and "vectors match" in first.reason and not first.cached
    second = probe.probe()
    assert second == probe.Verdict(first.ok, first.reason, cached=True)
    files = list((isolated_llamaembed_cache / "probes").glob("extra-buffers-*.json"))
    assert [f.name for f in files] == [f"extra-buffers-{probe.build_key()}.json"]


def test_a_child_killed_by_a_signal_is_refused() -> None:
    verdict = probe.probe(command=SEGFAULT)
    assert not verdict.ok and "SIGSEGV" in verdict.reason
    allowed, why = extra_buffers_allowed(parse_system_info(SPR_BUILD), {}, lambda: verdict)
    assert not allowed and "SIGSEGV" in why and "-fno-tree-dse" in why


def test_a_child_with_other_vectors_is_refused() -> None:
    verdict = probe.probe(command=OTHER_VECTORS)
    assert not verdict.ok and "other vectors" in verdict.reason


def test_a_child_that_cannot_run_keeps_plain_buffers_and_caches_nothing(
    isolated_llamaembed_cache: Path,
) -> None:
    failing = [sys.executable, "-c", "raise SystemExit('no model here')"]
    verdict = probe.probe(reference_command=failing)
    assert (
        not verdict.ok and "could not run" in verdict.reason and "no model here" in verdict.reason
    )


def test_the_key_follows_the_libraries_and_the_cpu(tmp_path: Path) -> None:
    library = tmp_path / "libllama.so"
    library.write_bytes(b"x" * 10)
    key = probe.build_key([library], ["avx2", "amx_int8"])
    assert key == probe.build_key([library], ["amx_int8", "avx2"])  # flag order is no matter
    assert key != probe.build_key([library], ["avx2"])
    library.write_bytes(b"y" * 11)  # a rebuilt library
    assert key != probe.build_key([library], ["avx2", "amx_int8"])
    assert probe.build_key() == probe.build_key()  # this machine's, stable


def test_the_rule_asks_the_probe_only_for_amx_builds() -> None:
    amx = parse_system_info(SPR_BUILD)

    def never() -> probe.Verdict:
        raise AssertionError("the probe ran")

    assert extra_buffers_allowed(amx, {"LLAMAEMBED_CPU_EXTRA_BUFFERS": "0"}, never)[0] is False
    assert extra_buffers_allowed(amx, {"LLAMAEMBED_CPU_EXTRA_BUFFERS": "1"}, never)[0] is True
    plain = parse_system_info(SPR_BUILD.replace("AMX_INT8 = 1", "AMX_INT8 = 0"))
    assert extra_buffers_allowed(plain, {}, never) == (
        True,
        "llama.cpp's default (this build has no AMX kernels)",
    )
    ok = probe.Verdict(True, "checked on this CPU and build: vectors match (min cosine 1.00000)")
    allowed, why = extra_buffers_allowed(amx, {}, lambda: ok)
    assert allowed and why.startswith("AMX kernels checked")


def test_a_refused_amx_build_warns_once_with_the_rebuild_command(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Wiring: this machine's build has no AMX kernels, so its system-info line is replaced.
    monkeypatch.setattr(_native, "_extra_buffers", None)
    monkeypatch.setattr(_native, "system_info_text", lambda: SPR_BUILD)
    monkeypatch.setattr(probe, "probe", lambda: probe.Verdict(False, "it died with SIGSEGV"))
    monkeypatch.delenv("LLAMAEMBED_CPU_EXTRA_BUFFERS", raising=False)
    with caplog.at_level(logging.WARNING, logger="llamaembed"):
        assert _native.extra_buffers()[0] is False
        assert _native.extra_buffers()[0] is False
    warnings = [r.getMessage() for r in caplog.records if "AMX kernels are off" in r.getMessage()]
    assert len(warnings) == 1 and probe.REBUILD_COMMAND in warnings[0]
