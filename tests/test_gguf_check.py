"""GGUF validation: what llama.cpp would assert on is refused; mutated files never kill us."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gguf_fuzz import mutations

from llamaembed import Llama, ModelLoadError, QuantizationError, quantize
from llamaembed.engine import gguf_check
from llamaembed.engine.gguf_check import GGML_TYPE_SIZES, position_rows, scan, validate

WORKER = Path(__file__).parent / "gguf_fuzz.py"


def test_type_sizes_match_gguf_py() -> None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    for type_id, sizes in GGML_TYPE_SIZES.items():
        assert GGML_QUANT_SIZES[GGMLQuantizationType(type_id)] == sizes, type_id


def test_scan_reads_what_gguf_py_reads(minilm_f16_path: Path) -> None:
    import gguf

    header = scan(minilm_f16_path)
    reader = gguf.GGUFReader(minilm_f16_path)
    assert set(header.tensors) == {t.name for t in reader.tensors}
    for tensor in reader.tensors:
        shape, ttype, offset = header.tensors[tensor.name]
        assert shape == tuple(int(d) for d in tensor.shape) and ttype == int(tensor.tensor_type)
        assert header.data_offset + offset == tensor.data_offset
    assert len(header.metadata["tokenizer.ggml.tokens"]) == 30522
    assert header.metadata["general.architecture"] == "bert"
    assert position_rows(header) == 512


def test_duplicate_token_is_our_error_not_an_assert(tmp_path: Path, tiny_encoder_path: Path) -> None:
    data = tiny_encoder_path.read_bytes()
    cat, dog = "\u2581cat".encode(), "\u2581dog".encode()  # phantom-space WordPiece tokens
    assert {cat, dog} <= set(scan(tiny_encoder_path).metadata["tokenizer.ggml.tokens"])
    start = data.index(struct.pack("<Q", len(dog)) + dog) + 8
    bad = tmp_path / "dup.gguf"
    bad.write_bytes(data[:start] + cat + data[start + len(dog):])
    with pytest.raises(ModelLoadError, match="token '\u2581cat' twice"):
        Llama(bad)
    with pytest.raises(QuantizationError, match="twice"):
        quantize(bad, tmp_path / "out.gguf", "q8_0")


def test_stamp_skips_rescans_but_catches_in_place_rewrites(tmp_path: Path,
                                                           tiny_encoder_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(tiny_encoder_path.read_bytes())
    gguf_check.check(model)
    stamps = list((Path(os.environ["LLAMAEMBED_CACHE"]) / "validated").iterdir())
    assert stamps
    # rewrite in place with a duplicated token: same size, and mtime forced back to the old one
    stat = model.stat()
    data = model.read_bytes()
    cat, dog = "\u2581cat".encode(), "\u2581dog".encode()
    start = data.index(struct.pack("<Q", len(dog)) + dog) + 8
    with model.open("r+b") as handle:
        handle.seek(start)
        handle.write(cat)
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model.stat().st_size == stat.st_size and model.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(ModelLoadError, match="twice"):
        gguf_check.check(model)
    with pytest.raises(ModelLoadError, match="twice"):
        Llama(model)


def test_short_position_table_is_refused(tmp_path: Path, tiny_encoder_path: Path) -> None:
    # a context longer than the position table, as a broken converter writes (llama.cpp
    # #10157: long input then asserts); refused with our error, naming both numbers
    rows = position_rows(scan(tiny_encoder_path))
    assert rows is not None
    data = bytearray(tiny_encoder_path.read_bytes())
    key = b"bert.context_length"
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
    assert struct.unpack_from("<I", data, at)[0] == 4  # uint32
    struct.pack_into("<I", data, at + 4, rows * 4)
    lying = tmp_path / "lying.gguf"
    lying.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=f"{rows} rows but bert.context_length is {rows * 4}"):
        Llama(lying)


@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf")])
def test_bad_layer_norm_epsilon_is_refused(tmp_path: Path, tiny_encoder_path: Path,
                                           eps: float) -> None:
    # ggml's norm kernels GGML_ASSERT(eps >= 0): a negative epsilon aborted the process
    data = bytearray(tiny_encoder_path.read_bytes())
    key = b"bert.attention.layer_norm_epsilon"
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
    assert struct.unpack_from("<I", data, at)[0] == 6  # float32
    struct.pack_into("<f", data, at + 4, eps)
    bad = tmp_path / "bad-eps.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"layer_norm_epsilon .* is out of range"):
        Llama(bad)


def _run_fuzz(source: Path, count: int, seed: int, folder: Path) -> None:
    cases = mutations(source, count, seed)

    def run(item: tuple[int, tuple[str, bytes]]) -> tuple[str, int | str, str]:
        i, (description, data) = item
        path = folder / f"mutant-{i}.gguf"
        path.write_bytes(data)
        try:
            result = subprocess.run([sys.executable, str(WORKER), str(path)],
                                    capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
        except subprocess.TimeoutExpired:
            return description, "timeout", ""
        finally:
            path.unlink(missing_ok=True)
        return description, result.returncode, result.stdout.strip() + result.stderr[-500:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, enumerate(cases)))
    failures = [(d, rc, out) for d, rc, out in results
                if rc != 0 or not (out.startswith("OK") or out.startswith("OURS:"))]
    assert not failures, failures[:5]
    ours = sum(out.startswith("OURS:") for _, _, out in results)
    assert ours > count // 2  # most mutations are refused with our error


def test_fuzzed_gguf_never_kills_the_process(tmp_path: Path, tiny_encoder_path: Path) -> None:
    _run_fuzz(tiny_encoder_path, 320, seed=20261123, folder=tmp_path)


@pytest.mark.slow
def test_fuzzed_gguf_never_kills_the_process_3000(tmp_path: Path, tiny_encoder_path: Path,
                                                   tiny_reranker_path: Path) -> None:
    _run_fuzz(tiny_encoder_path, 2000, seed=1, folder=tmp_path)
    _run_fuzz(tiny_reranker_path, 1000, seed=2, folder=tmp_path)


def test_validation_cost_on_load(minilm_f16_path: Path) -> None:
    # Not a timing assertion: the measured ratio is printed for the benchmark record; the
    # check is that validation reads the header only (a fraction of the file).
    header = validate(minilm_f16_path)
    assert header.data_offset < minilm_f16_path.stat().st_size / 20
    started = time.perf_counter()
    validate(minilm_f16_path)
    print(f"validate: {1000 * (time.perf_counter() - started):.1f} ms")


def test_truncated_and_garbage_headers(tmp_path: Path, tiny_encoder_path: Path) -> None:
    data = tiny_encoder_path.read_bytes()
    header = scan(tiny_encoder_path)
    for cut in (4, 12, 30, header.data_offset - 1, header.data_offset + 10, len(data) - 1):
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError):
            validate(path)
    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(data[:4] + struct.pack("<I", 1) + data[8:])
    with pytest.raises(ModelLoadError, match="version 1"):
        validate(v1)
    assert gguf_check.validate(tiny_encoder_path).metadata["general.architecture"] == "bert"
