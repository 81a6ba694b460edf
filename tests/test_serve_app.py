"""The server's wiring, in-process: create_app with models already open, over httpx.ASGITransport.

The real-process tests (test_serve.py) run the server as users do; these check that the
layers (guard, routes, infer, the error table) fit together, without a socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from llamaembed import Llama, StaticModel, distill
from llamaembed.engine.pooling import sigmoid
from llamaembed.errors import (
    EmptyInputError,
    InferenceError,
    InputTooLongError,
    InvalidTokenError,
    MissingHeadError,
    QueueFullError,
    RequestTooLargeError,
)
from llamaembed.hub.spec import ModelSpec
from llamaembed.params import LlamaParams
from llamaembed.serve.app import ServerConfig, create_app
from llamaembed.serve.errors import LIBRARY_ERRORS, ApiError, to_api_error
from llamaembed.serve.infer import ClientGone
from llamaembed.serve.state import ServerState

KEY = "in-process-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["cats purr", "rust has no garbage collector", "the relay clicks twice"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def static(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> StaticModel:
    folder = distill(tiny_encoder_path, tmp_path_factory.mktemp("static") / "tiny", dims=16)
    return StaticModel(folder)


async def call(app, method: str, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
        return await client.request(method, path, **kwargs)


def run(app, method: str, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    return asyncio.run(call(app, method, path, **kwargs))


@pytest.fixture
def app(tiny_encoder: Llama, tiny_reranker: Llama) -> Iterator[object]:
    config = ServerConfig(api_keys=(KEY,), max_client_batch=8, max_body_bytes=4096)
    application = create_app(config, {"embedding": tiny_encoder, "rerank": tiny_reranker})
    yield application
    application.state.llamaembed.close()


def test_injected_models_are_served_and_stay_the_callers(app, tiny_encoder: Llama) -> None:  # type: ignore[no-untyped-def]
    reply = run(app, "POST", "/v1/embeddings", json={"input": TEXTS}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert cosines(got, tiny_encoder.embed_texts(TEXTS)).min() >= 0.99999
    assert body["model"] == tiny_encoder.spec.name
    tokens = sum(len(tiny_encoder.tokenize(t)) for t in TEXTS)
    assert body["usage"]["prompt_tokens"] == tokens
    cards = run(app, "GET", "/v1/models", headers=AUTH).json()["data"]
    assert {c["kind"] for c in cards} == {"embedding", "rerank"}
    app.state.llamaembed.close()  # stops the queues; the models are the caller's
    assert tiny_encoder.embed_texts(TEXTS[:1]).shape == (1, tiny_encoder.n_embd)


def test_rerank_route_equals_the_cross_encoder(app, tiny_reranker: Llama) -> None:  # type: ignore[no-untyped-def]
    query, docs = "garbage collection", TEXTS
    reply = run(app, "POST", "/v1/rerank", json={"query": query, "documents": docs}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    expected = sigmoid(tiny_reranker.rerank(query, docs))
    for item in reply.json()["results"]:
        assert abs(item["relevance_score"] - float(expected[item["index"]])) < 1e-5


def test_a_static_model_is_served_like_a_gguf(static: StaticModel) -> None:
    app = create_app(ServerConfig(), {"embedding": static})
    body = {"input": TEXTS, "encoding_format": "base64"}
    reply = run(app, "POST", "/embeddings", json=body)
    assert reply.status_code == 200, reply.text
    got = np.array(
        [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in reply.json()["data"]]
    )
    assert np.abs(got - static.embed_texts(TEXTS)).max() < 1e-6
    missing = run(app, "POST", "/v1/rerank", json={"query": "q", "documents": ["d"]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": [" ".join(["rust"] * 500)], "truncate": False}, 400, "input_too_long"),
        ({"input": [[1, 2, 10**9]]}, 400, "invalid_token"),
        ({"input": ["a"] * 9}, 400, "too_many_inputs"),
        ({"input": "x", "model": "other"}, 404, "model_not_found"),
        ({"input": 5}, 422, "invalid_type"),
        ({"input": "x", "dimensions": 0}, 400, "invalid_dimensions"),
    ],
)
def test_errors_leave_in_openais_shape(app, body: dict, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    reply = run(app, "POST", "/v1/embeddings", json=body, headers=AUTH)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    failures = run(app, "GET", "/metrics").text
    assert f'reason="{code}"' in failures


def test_guard_refuses_before_parsing(app) -> None:  # type: ignore[no-untyped-def]
    no_key = run(app, "POST", "/v1/embeddings", json={"input": "x"})
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    too_big = run(app, "POST", "/v1/embeddings", content=b"x" * 5000, headers=AUTH)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
    not_json = run(app, "POST", "/v1/embeddings", content=b"{", headers=AUTH)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    assert run(app, "GET", "/health").status_code == 200  # open without a key


def test_the_error_table_answers_every_library_error() -> None:
    cases = {
        InputTooLongError("x", index=2, n_tokens=600, limit=512): (400, "input_too_long"),
        InvalidTokenError("bad id", index=0): (400, "invalid_token"),
        MissingHeadError("no sparse head"): (400, "missing_head"),
        EmptyInputError("empty"): (400, "empty_input"),
        QueueFullError("queue full", retry_after=1.2): (429, "queue_full"),
        RequestTooLargeError("too many", n_tokens=9000, limit=4096): (413, "too_many_tokens"),
        ClientGone(): (499, "client_disconnected"),
        InferenceError("decode failed"): (500, "inference_failed"),
        RequestValidationError([{"type": "json_invalid", "loc": (), "msg": "x"}]): (
            400,
            "invalid_json",
        ),
        RuntimeError("boom"): (500, "internal"),
    }
    for exc, (status, code) in cases.items():
        error = to_api_error(exc)
        assert (error.status, error.code) == (status, code), exc
    assert to_api_error(QueueFullError("q", retry_after=1.2)).headers == {"Retry-After": "2"}
    too_long = to_api_error(InputTooLongError("x", index=2, n_tokens=600, limit=512))
    assert "index 2 has 600 tokens" in too_long.message and too_long.param == "input"
    given = ApiError(418, "teapot")
    assert to_api_error(given) is given
    assert {kind for kind, _ in LIBRARY_ERRORS} <= {type(e) for e in cases}


def test_health_is_503_while_loading_then_200(
    tiny_encoder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loading = threading.Event()
    real_open = ServerState.open_models

    def slow_open(self: ServerState) -> None:  # wiring: hold the real load until told
        loading.wait(30)
        real_open(self)

    monkeypatch.setattr(ServerState, "open_models", slow_open)
    spec = ModelSpec("tiny", LlamaParams(str(tiny_encoder_path)))
    app = create_app(ServerConfig(embedding=spec))
    with TestClient(app) as client:
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["error"]["code"] == "model_loading"
        early = client.post("/v1/embeddings", json={"input": "cats"})
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        loading.set()
        deadline = time.monotonic() + 30
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/health").status_code == 200
        assert client.post("/v1/embeddings", json={"input": "cats"}).status_code == 200


# ----------------------------------------------------------------------------- pure parts
def test_count_values_skips_commas_inside_strings() -> None:
    from llamaembed.serve.parsing import count_values

    body = json.dumps({"input": ['a, b, "c", d\\, e', "x,y"], "model": "m"}).encode()
    assert count_values(body, enough=0) == 2  # the commas between the values only
    assert count_values(b"[" + b"1," * 1000 + b"1]", enough=0) == 1000
    assert count_values(b"[1,2,3]", enough=10) == 2  # under `enough`: the plain count


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        ("   ", True),
        ("\t\r\n", True),
        ("\x00\x01\x7f\x9f", True),
        ("\u3000\x85", True),
        ("a", False),
        (" a ", False),
        ("\x01a", False),
        ("é", False),
        ("\u200b", False),
    ],
)
def test_blank_means_only_whitespace_and_control_characters(text: str, blank: bool) -> None:
    from llamaembed.serve.parsing import is_blank

    assert is_blank(text) is blank


def test_body_reader_decodes_within_its_limit() -> None:
    import gzip
    import zlib

    from llamaembed.serve.body import BodyReader

    raw = b'{"input": "cats"}' * 10
    for encoding, packed in ((b"gzip", gzip.compress(raw)), (b"deflate", zlib.compress(raw))):
        reader = BodyReader(encoding, limit=len(raw))
        for i in range(0, len(packed), 7):  # as it arrives, in pieces
            reader.feed(packed[i : i + 7])
        assert reader.finish() == raw
    bomb = gzip.compress(b"0" * 10_000_000)
    reader = BodyReader(b"gzip", limit=1_000_000)
    with pytest.raises(ApiError) as info:
        reader.feed(bomb)
    assert info.value.status == 413 and len(reader.buffer) <= 1_000_000
    with pytest.raises(ApiError) as info:
        BodyReader(b"br", limit=10)
    assert info.value.status == 415
    with pytest.raises(ApiError) as info:
        short = BodyReader(b"gzip", limit=1000)
        short.feed(gzip.compress(raw)[:-12])
        short.finish()
    assert info.value.status == 400
