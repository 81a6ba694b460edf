"""The server as a real process on 127.0.0.1: OpenAI's client, httpx, errors, load, SIGTERM."""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from server_process import ServerProcess
from tiny_models import WORDS

from llamaembed import Llama
from llamaembed.engine.pooling import sigmoid

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY_PREFIX = "query: "
DOCUMENT_PREFIX = "passage: "


def sentences(n: int, seed: int = 0, length: tuple[int, int] = (3, 12)) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(*length))).tolist()) for _ in range(n)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def server(tiny_encoder_path: Path, tiny_reranker_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        tiny_encoder_path,
        "--rerank",
        tiny_reranker_path,
        "--max-client-batch",
        "64",
        "--max-body-mb",
        "1",
        "--query-prefix",
        QUERY_PREFIX,
        "--document-prefix",
        DOCUMENT_PREFIX,
        api_key=KEY,
    ) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        yield http


def post(client: httpx.Client, path: str, body: object) -> httpx.Response:
    return client.post(path, json=body)


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


# ----------------------------------------------------------------------------- embeddings
def test_openai_client_base64_default_equals_embed_texts(
    server: ServerProcess, tiny_encoder: Llama
) -> None:
    texts = sentences(40, seed=1)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    result = client.embeddings.create(model="tiny-encoder-f32", input=texts)
    got = np.array([item.embedding for item in result.data], dtype=np.float32)
    assert [item.index for item in result.data] == list(range(len(texts)))
    expected = tiny_encoder.embed_texts(texts)
    assert cosines(got, expected).min() >= 0.99999
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    tokens = sum(len(tiny_encoder.tokenize(t)) for t in texts)
    assert result.usage.prompt_tokens == result.usage.total_tokens == tokens
    assert result.model == "tiny-encoder-f32"


def test_openai_client_dimensions_and_token_arrays(
    server: ServerProcess, tiny_encoder: Llama
) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    texts = sentences(5, seed=2)
    full = tiny_encoder.embed_texts(texts)
    cut = client.embeddings.create(model="tiny-encoder-f32", input=texts, dimensions=16)
    got = np.array([d.embedding for d in cut.data], dtype=np.float32)
    assert got.shape == (5, 16)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    assert np.abs(got - expected).max() < 1e-5
    ids = [tiny_encoder.tokenize(t).tolist() for t in texts]
    by_ids = client.embeddings.create(model="tiny-encoder-f32", input=ids)
    assert cosines(np.array([d.embedding for d in by_ids.data]), full).min() >= 0.99999
    one = client.embeddings.create(model="tiny-encoder-f32", input=ids[0])
    assert len(one.data) == 1
    assert cosines(np.array([one.data[0].embedding]), full[:1]).min() >= 0.99999


def test_float_and_base64_formats_agree(client: httpx.Client) -> None:
    texts = sentences(3, seed=3)
    as_float = post(client, "/v1/embeddings", {"input": texts, "encoding_format": "float"})
    as_b64 = post(client, "/embeddings", {"input": texts, "encoding_format": "base64"})
    assert as_float.status_code == as_b64.status_code == 200
    floats = np.array([d["embedding"] for d in as_float.json()["data"]], dtype=np.float32)
    decoded = np.array(
        [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in as_b64.json()["data"]]
    )
    assert np.array_equal(floats, decoded)
    body = as_float.json()
    assert body["object"] == "list" and body["model"] == "tiny-encoder-f32"
    assert all(d["object"] == "embedding" for d in body["data"])
    for header in ("x-queue-time", "x-inference-time", "x-total-time", "x-compute-tokens"):
        assert header in as_float.headers


def test_single_string_input_and_input_types(client: httpx.Client, tiny_encoder: Llama) -> None:
    text = "which language is memory safe"
    plain = post(client, "/v1/embeddings", {"input": text}).json()["data"]
    assert len(plain) == 1
    assert cosines(np.array([plain[0]["embedding"]]), tiny_encoder.embed_texts([text]))[0] > 0.99999
    for field, value, prefix in (
        ("input_type", "query", QUERY_PREFIX),
        ("prompt_name", "document", DOCUMENT_PREFIX),
    ):
        got = post(client, "/v1/embeddings", {"input": [text], field: value}).json()["data"]
        expected = tiny_encoder.embed_texts([prefix + text])
        assert cosines(np.array([got[0]["embedding"]]), expected)[0] > 0.99999


def test_long_input_is_truncated_by_default_and_refused_without(
    client: httpx.Client, tiny_encoder: Llama
) -> None:
    long_text = " ".join(["rust"] * 500)  # the tiny model takes 128 tokens
    ok = post(client, "/v1/embeddings", {"input": ["cats", long_text]})
    assert ok.status_code == 200
    expected = tiny_encoder.embed_texts(["cats", long_text])
    got = np.array([d["embedding"] for d in ok.json()["data"]])
    assert cosines(got, expected).min() > 0.99999
    truncated = r"llamaembed_inputs_truncated_total\{[^}]*\} (\S+)"
    counted = re.search(truncated, client.get("/metrics").text)
    assert counted and float(counted.group(1)) >= 1
    refused = post(client, "/v1/embeddings", {"input": ["cats", long_text], "truncate": False})
    error = assert_error(refused, 400, "input")
    assert "index 1" in error["message"] and "502 tokens" in error["message"]
    assert error["code"] == "input_too_long"


# ----------------------------------------------------------------------------- rerank
def test_rerank_equals_llama_rerank(client: httpx.Client, tiny_reranker: Llama) -> None:
    query = "fast systems programming language"
    docs = sentences(12, seed=4)
    expected = sigmoid(tiny_reranker.rerank(query, docs))
    response = post(client, "/v1/rerank", {"query": query, "documents": docs})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "model", "results", "usage"}
    results = body["results"]
    assert sorted(r["index"] for r in results) == list(range(len(docs)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert abs(r["relevance_score"] - expected[r["index"]]) < 1e-5
        assert "document" not in r
    assert body["usage"]["total_tokens"] > 0


def test_rerank_top_n_documents_objects_texts_and_raw_scores(
    client: httpx.Client, tiny_reranker: Llama
) -> None:
    query = "cats and dogs"
    docs = sentences(8, seed=5)
    raw = tiny_reranker.rerank(query, docs)
    best = np.argsort(-raw, kind="stable")[:3].tolist()
    top = post(
        client,
        "/rerank",
        {
            "query": query,
            "documents": [{"text": d} for d in docs],
            "top_n": 3,
            "return_documents": True,
        },
    ).json()["results"]
    assert [r["index"] for r in top] == best
    assert [r["document"]["text"] for r in top] == [docs[i] for i in best]
    # TEI's body (texts) on the same path gets TEI's answer: a bare list, best first
    tei = post(client, "/v1/rerank", {"query": query, "texts": docs, "raw_scores": True}).json()
    assert [r["index"] for r in tei] == np.argsort(-raw, kind="stable").tolist()
    for r in tei:
        assert set(r) == {"index", "score"} and abs(r["score"] - raw[r["index"]]) < 1e-4


# ----------------------------------------------------------------------------- the rest
def test_models_health_metrics(server: ServerProcess, client: httpx.Client) -> None:
    cards = client.get("/v1/models").json()["data"]
    assert {c["id"]: c["kind"] for c in cards} == {
        "tiny-encoder-f32": "embedding",
        "tiny-reranker-f32": "rerank",
    }
    assert next(c for c in cards if c["kind"] == "embedding")["dimensions"] == 64
    assert httpx.get(f"{server.url}/health").status_code == 200  # no key needed
    post(client, "/v1/embeddings", {"input": ["hello world"]})
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        "llamaembed_requests_total",
        "llamaembed_request_failures_total",
        "llamaembed_queue_size",
        "llamaembed_batch_size_bucket",
        "llamaembed_batch_tokens_bucket",
        "llamaembed_queue_duration_seconds",
        "llamaembed_inference_duration_seconds_bucket",
        "llamaembed_request_duration_seconds_bucket",
        "llamaembed_tokens_total",
    ):
        assert name in text, name
    served = re.search(r'llamaembed_requests_total\{route="embeddings",status="200"\} (\S+)', text)
    assert served and float(served.group(1)) >= 1
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/embeddings", "/v1/rerank", "/v1/models"} <= set(schema["paths"])
    embed_body = schema["paths"]["/v1/embeddings"]["post"]["requestBody"]
    assert "input" in embed_body["content"]["application/json"]["schema"]["properties"]
    rerank_body = schema["paths"]["/v1/rerank"]["post"]["requestBody"]
    assert "documents" in rerank_body["content"]["application/json"]["schema"]["properties"]


def test_auth(server: ServerProcess) -> None:
    body = {"input": "hello"}
    missing = httpx.post(f"{server.url}/v1/embeddings", json=body)
    assert assert_error(missing, 401)["type"] == "authentication_error"
    wrong = httpx.post(
        f"{server.url}/v1/embeddings", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert_error(wrong, 401)
    # Auth comes before parsing: a bad body without a key is still a 401.
    assert_error(httpx.post(f"{server.url}/v1/rerank", content=b"{"), 401)
    assert_error(httpx.get(f"{server.url}/v1/models"), 401)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="tiny-encoder-f32", input="hello")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": []}, 400, "input"),
        ({"input": ["ok", ""]}, 400, "input"),
        ({"input": ["x"] * 65}, 400, "input"),  # --max-client-batch 64
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": "x", "dimensions": 0}, 400, "dimensions"),
        ({"input": "x", "dimensions": 65}, 400, "dimensions"),
        ({"input": [5, -1]}, 400, "input"),
        ({"input": [[5], [10**6]]}, 400, "input"),
        ({"input": [[]]}, 400, "input"),
        ({"input": "x", "input_type": "passage"}, 400, "input_type"),
        ({"input": [1, 2], "input_type": "query"}, 400, "input_type"),
        ({"input": "x", "model": "text-embedding-3-small"}, 404, "model"),
        ({"input": "x", "model": "tiny-reranker-f32"}, 404, "model"),
        ({"input": 5}, 422, "input"),
        ({"input": [1, "a"]}, 422, "input"),
        ({"input": [1.5]}, 422, "input"),
        ({"input": "x", "dimensions": "8"}, 422, "dimensions"),
        ({"input": "x", "truncate": "no"}, 422, "truncate"),
        ({"input": None}, 422, "input"),
        ({}, 422, "input"),
    ],
)
def test_embedding_errors(client: httpx.Client, body: dict, status: int, param: str) -> None:
    error = assert_error(post(client, "/v1/embeddings", body), status)
    if status != 422:
        assert error["param"] == param
    else:
        assert error["param"].startswith(param)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"query": "q", "documents": []}, 400),
        ({"query": "", "documents": ["a"]}, 400),
        ({"query": "q"}, 400),
        ({"query": "q", "documents": ["a"], "texts": ["b"]}, 400),
        ({"query": "q", "documents": ["a"] * 65}, 400),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 400),
        ({"query": "q", "documents": ["a"], "model": "tiny-encoder-f32"}, 404),
        ({"query": "q", "documents": [1]}, 422),
        ({"query": "q", "documents": [{"txt": "a"}]}, 422),
        ({"query": 3, "documents": ["a"]}, 422),
    ],
)
def test_rerank_errors(client: httpx.Client, body: dict, status: int) -> None:
    assert_error(post(client, "/v1/rerank", body), status)


def test_malformed_bodies_are_4xx_never_500(server: ServerProcess, client: httpx.Client) -> None:
    bodies = [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"text"',
        b"\xff\xfe",
        b'{"input": {"a": 1}}',
        b'{"input": [[1, 2], "a"]}',
        b'{"input": [' + b"9" * 400 + b"]}",
        b'{"input": "x", "dimensions": 1e309}',
        b'{"input": "\\ud800"}',
    ]
    for path in ("/v1/embeddings", "/v1/rerank"):
        for raw in bodies:
            response = client.post(path, content=raw, headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500 or response.status_code == 200, (
                raw,
                response.text,
            )
            if response.status_code != 200:
                assert_error(response, response.status_code)
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.get("/v1/embeddings"), 405)
    assert client.post("/v1/embeddings", json={"input": "still serving"}).status_code == 200


def test_body_limit(server: ServerProcess, client: httpx.Client) -> None:
    big = {"input": ["word " * 4000] * 60}  # 1.2 MB; the limit is 1 MiB
    error = assert_error(post(client, "/v1/embeddings", big), 413)
    assert error["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"input": ["'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"]}'

    streamed = client.post(
        "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413)


def test_curl_style_form_content_type_is_read_as_json(client: httpx.Client) -> None:
    response = client.post(
        "/v1/embeddings",
        content=json.dumps({"input": "hello"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


# ----------------------------------------------------------------------------- load
def test_load_32_clients_20_requests_each(server: ServerProcess, tiny_encoder: Llama) -> None:
    clients, per_client = 32, 20
    texts = sentences(clients * per_client, seed=6, length=(1, 30))
    expected = tiny_encoder.embed_texts(texts)
    got = np.zeros_like(expected)
    failures: list[str] = []

    def run(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            for j in range(per_client):
                i = worker * per_client + j
                body = {"input": texts[i], "encoding_format": "base64"}
                response = http.post("/v1/embeddings", json=body)
                if response.status_code != 200:
                    failures.append(response.text)
                    continue
                got[i] = np.frombuffer(
                    base64.b64decode(response.json()["data"][0]["embedding"]), "<f4"
                )

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    assert not failures
    assert cosines(got, expected).min() >= 0.99999


# ----------------------------------------------------------------------------- queue, drain
def long_texts(n: int, seed: int) -> list[str]:
    return sentences(n, seed=seed, length=(400, 401))  # over 512 tokens: truncated to 512


@pytest.fixture()
def slow_server(minilm_f16_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        minilm_f16_path,
        *("--max-queue-tokens", "32768", "--max-request-tokens", "16384"),
        *("--max-client-batch", "32", "--threads", "1"),
    ) as process:
        yield process


def _post_in_thread(url: str, body: dict) -> tuple[threading.Thread, list[httpx.Response]]:
    out: list[httpx.Response] = []

    def run() -> None:
        out.append(httpx.post(url, json=body, timeout=120))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _metric(server: ServerProcess, pattern: str) -> float:
    match = re.search(pattern + r" (\S+)", httpx.get(f"{server.url}/metrics").text)
    return float(match.group(1)) if match else 0.0


def test_full_queue_answers_429_with_retry_after(slow_server: ServerProcess) -> None:
    url = f"{slow_server.url}/v1/embeddings"
    first, _ = _post_in_thread(url, {"input": long_texts(32, 1)})
    time.sleep(0.15)  # 8 run at once (4096 tokens), up to 24 wait
    # Two more of 32 at once: at most 64 may wait, so one of them (or both) is refused,
    # unless the first 32 ran in 0.15 s, which is 10x this machine's speed.
    second, second_out = _post_in_thread(url, {"input": long_texts(32, 2)})
    third, third_out = _post_in_thread(url, {"input": long_texts(32, 3)})
    for thread in (first, second, third):
        thread.join()
    statuses = sorted(r.status_code for r in (*second_out, *third_out))
    assert 429 in statuses and set(statuses) <= {200, 429}, statuses
    refused = next(r for r in (*second_out, *third_out) if r.status_code == 429)
    error = assert_error(refused, 429)
    assert error["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
    assert httpx.post(url, json={"input": "still serving"}).status_code == 200


def test_disconnected_client_is_dropped_from_the_queue(minilm_f16_path: Path) -> None:
    server = ServerProcess(
        minilm_f16_path,
        *("--max-queue-tokens", "131072", "--max-request-tokens", "16384"),
        *("--max-client-batch", "32", "--threads", "1"),
    )
    try:
        url = f"{server.url}/v1/embeddings"
        # 128 long inputs ahead (seconds of work here), then a client that leaves.
        ahead = [_post_in_thread(url, {"input": long_texts(32, 10 + i)}) for i in range(4)]
        time.sleep(0.2)
        host, port = server.url.removeprefix("http://").split(":")
        body = json.dumps({"input": sentences(8, seed=7)}).encode()
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.2)  # queued behind the 128; then the client goes away
        for thread, out in ahead:
            thread.join()
            assert out[0].status_code == 200
        pattern = r"llamaembed_inputs_dropped_total\{[^}]*\}"
        deadline = time.monotonic() + 10
        while _metric(server, pattern) != 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _metric(server, pattern) == 8
        gone = r'llamaembed_request_failures_total\{reason="client_disconnected"[^}]*\}'
        assert _metric(server, gone) == 1
        # Only the 128 inputs of the requests that stayed ran.
        assert _metric(server, r"llamaembed_inputs_total\{[^}]*\}") == 128
    finally:
        server.stop()


def test_sigterm_finishes_in_flight_requests_and_exits_0(
    minilm_f16_path: Path, minilm: Llama
) -> None:
    process = ServerProcess(minilm_f16_path, "--threads", "1")
    texts = long_texts(32, 8)  # about 1.5 s of work here
    thread, out = _post_in_thread(f"{process.url}/v1/embeddings", {"input": texts})
    # SIGTERM once the request is in the server's hands (a fixed sleep raced on a busy
    # machine): inputs queued or already run.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        _metric(process, r"llamaembed_queue_size\{[^}]*\}")
        or _metric(process, r"llamaembed_inputs_total\{[^}]*\}")
    ):
        time.sleep(0.01)
    process.process.send_signal(signal.SIGTERM)
    thread.join()
    assert process.stop(timeout=60) == 0
    assert out[0].status_code == 200, out[0].text
    got = np.array([d["embedding"] for d in out[0].json()["data"]])
    assert cosines(got, minilm.embed_texts(texts)).min() >= 0.99999
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{process.url}/health", timeout=2)


def test_bad_model_is_a_clear_cli_error(tmp_path: Path, tiny_reranker_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "llamaembed", "serve", str(tmp_path / "missing.gguf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "Error:" in missing.stderr
    # A cross-encoder given as the embedding model: the process exits 1 and says why.
    result = subprocess.run(
        [sys.executable, "-m", "llamaembed", "serve", str(tiny_reranker_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Error:" in result.stderr and "--rerank" in result.stderr


def test_api_key_file_accepts_each_key(tmp_path: Path, tiny_encoder_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# one key a line\nfirst-key\n\nsecond-key\n")
    with ServerProcess(tiny_encoder_path, "--api-key-file", keys) as process:
        url = f"{process.url}/v1/embeddings"
        for key in ("first-key", "second-key"):
            ok = httpx.post(url, json={"input": "cats"}, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        assert_error(
            httpx.post(
                url, json={"input": "cats"}, headers={"Authorization": "Bearer # one key a line"}
            ),
            401,
        )


def test_n_ctx_bounds_the_input_length(tiny_encoder_path: Path, tiny_encoder: Llama) -> None:
    with ServerProcess(tiny_encoder_path, "--n-ctx", "32") as process:
        url = f"{process.url}/v1/embeddings"
        long_text = " ".join(["rust"] * 100)
        cut = httpx.post(url, json={"input": long_text}).json()
        assert cut["usage"]["prompt_tokens"] == 32
        refused = httpx.post(url, json={"input": long_text, "truncate": False})
        assert "at most 32" in assert_error(refused, 400)["message"]
        with Llama(tiny_encoder_path, n_ctx=32) as capped:
            expected = capped.embed_texts([long_text])
        assert cosines(np.array([cut["data"][0]["embedding"]]), expected)[0] > 0.99999
