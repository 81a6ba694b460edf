"""The embedder contract: both model kinds implement it, and ModelSpec reopens either."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from llamaembed import Capabilities, Embedder, Llama, ModelLoadError, StaticModel, distill
from llamaembed.batch import BatchEmbedder
from llamaembed.hub.spec import ModelSpec, as_model_spec, model_record

TEXTS = ["cats purr", "rust has no garbage collector"]


@pytest.fixture(scope="module")
def static_folder(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return distill(tiny_encoder_path, tmp_path_factory.mktemp("static") / "tiny", dims=16)


def test_capabilities_follow_the_model(tiny_encoder_path: Path, tiny_reranker: Llama) -> None:
    with Llama(tiny_encoder_path) as encoder, Llama(tiny_encoder_path, pooling="none") as tokens:
        assert isinstance(encoder, Embedder) and isinstance(encoder, BatchEmbedder)
        assert encoder.capabilities == Capabilities(token_states=True)
        assert tokens.capabilities == Capabilities(
            dense=False, multi_vector=True, token_states=True
        )
        assert encoder.facts.architecture == "bert" and encoder.facts.pooling == "mean"
        assert encoder.facts.weight_type == "F32"
        assert encoder.facts.size_bytes == tiny_encoder_path.stat().st_size
    assert tiny_reranker.capabilities == Capabilities(dense=False, rerank=True)
    assert tiny_reranker.is_reranker


def test_spec_round_trips_through_json_and_pickle(
    tiny_encoder_path: Path, static_folder: Path
) -> None:
    gguf = Llama(tiny_encoder_path, query_prefix="query: ", n_batch=64)
    static = StaticModel(static_folder, query_prefix="q: ", document_prefix="d: ")
    for model in (gguf, static):
        with model:
            spec = model.spec
            assert spec == as_model_spec(model)
            for copy in (
                ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))),
                pickle.loads(pickle.dumps(spec)),
            ):
                assert copy == spec
                with copy.open() as reopened:
                    assert type(reopened) is type(model)
                    assert reopened.fingerprint == model.fingerprint
                    assert reopened.query_prefix == model.query_prefix
                    got = reopened.embed_query(TEXTS[0])
                    assert np.abs(got - model.embed(model.query_prefix + TEXTS[0])).max() < 1e-6
    assert gguf.spec.kind == "gguf" and static.spec.kind == "static"


def test_records_written_before_modelspec_still_open(
    tiny_encoder_path: Path, static_folder: Path
) -> None:
    with Llama(tiny_encoder_path) as llama:
        values = dataclasses.asdict(llama.params)
        old = {
            "fingerprint": llama.fingerprint,
            "params": {k: getattr(v, "value", v) for k, v in values.items()},
            "path": str(tiny_encoder_path),
        }
        with ModelSpec.from_dict(old).open() as reopened:
            assert reopened.fingerprint == llama.fingerprint
        record = model_record(llama)
        assert record["fingerprint"] == llama.fingerprint and record["params"] == old["params"]
    old_static = {"fingerprint": "x", "static_folder": str(static_folder), "path": "tiny"}
    with ModelSpec.from_dict(old_static).open() as reopened:
        assert isinstance(reopened, StaticModel)
    with pytest.raises(ModelLoadError, match="does not say how to open"):
        ModelSpec.from_dict({"fingerprint": "x"})
    with pytest.raises(ModelLoadError, match="invalid"):
        ModelSpec.from_dict({"params": {"model_path": "m.gguf", "n_batch": 1}})


def test_token_counting_and_documents(tiny_encoder_path: Path, static_folder: Path) -> None:
    for model in (
        Llama(tiny_encoder_path, document_prefix="passage: "),
        StaticModel(static_folder),
    ):
        with model:
            for text in TEXTS:
                assert model.count_tokens(text) == len(model.tokenize(text, add_special=False))
            documents = model.embed_documents(TEXTS)
            expected = model.embed_texts([model.document_prefix + t for t in TEXTS])
            assert np.abs(documents - expected).max() < 1e-6
            with pytest.raises(TypeError):
                model.embed(["not", "a", "string"])  # type: ignore[arg-type]


class _Stop(Exception):
    pass


def test_on_tokens_hears_every_input_and_can_stop_the_work(
    tiny_encoder_path: Path, static_folder: Path, tiny_reranker: Llama
) -> None:
    texts = [f"text number {i} about cats and rust" for i in range(600)]
    with Llama(tiny_encoder_path) as gguf, StaticModel(static_folder) as static:
        for model in (gguf, static):
            heard: list[int] = []
            prepared = model.prepare_texts(texts, on_tokens=heard.append)
            assert heard == [len(p) for p in prepared]

            def stop(n: int) -> None:
                raise _Stop

            with pytest.raises(_Stop):
                model.prepare_texts(texts, on_tokens=stop)
    heard = []
    pairs = tiny_reranker.prepare_pairs("cats", texts[:5], on_tokens=heard.append)
    assert heard == [len(p) for p in pairs]
