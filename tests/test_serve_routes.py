"""Every route of the route table on a real server process, and the real clients of each contract.

The routes under test come from the server itself (its OpenAPI document) and from the
route table (aliases, example bodies), so a route added to the table is covered here with
no new test: a chunked body past ``--max-body-mb`` is refused with bounded memory, a gzip
body gets the plain body's answer. Then text-embeddings-inference's contract through
``huggingface_hub.InferenceClient`` and by hand, and Ollama's through the official
``ollama`` client, checked against the library's own vectors.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import pytest
from huggingface_hub import InferenceClient
from server_process import ServerProcess
from test_serve import AUTH, KEY, cosines
from test_serve_limits import memory_kb, reset_peak

from llamaembed import Llama
from llamaembed.engine.pooling import sigmoid
from llamaembed.outputs import ModelInput, Want
from llamaembed.serve.routes import ROUTES, RouteTable

MAX_BODY_MB = 16
CHUNKED_MB = 64
# Peak RSS growth allowed while refusing a 64 MiB chunked body: the decoded body is held
# up to the 16 MiB limit (a bytearray that grows by doubling) plus the socket's buffers.
# Before the route table, the bge-m3 routes read such a body whole: +2.4 GB.
RSS_BOUND_MB = 3 * MAX_BODY_MB
# Keys of an answer that differ from one request to the next.
VOLATILE = {"id", "total_duration", "load_duration"}
TEXTS = ["Cats purr.", "Rust has no GC.", "The archive module reads zip files."]


@pytest.fixture(scope="module")
def server(tiny_m3_path: Path, tiny_reranker_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        tiny_m3_path,
        *("--rerank", tiny_reranker_path),
        *("--max-body-mb", str(MAX_BODY_MB), "--threads", "1"),
        api_key=KEY,
    ) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def model_name(client: httpx.Client) -> str:
    cards = client.get("/v1/models").json()["data"]
    name: str = next(c["id"] for c in cards if c["kind"] == "embedding")
    return name


def post_paths(client: httpx.Client) -> list[str]:
    """Return every POST path the server documents (aliases included)."""
    document = client.get("/openapi.json").json()
    return sorted(path for path, operations in document["paths"].items() if "post" in operations)


def test_the_openapi_document_is_the_route_table(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    documented = {(p, m.upper()) for p, ops in document["paths"].items() for m in ops}
    declared = {(p, m) for r in ROUTES for p in r.paths for m in r.methods}
    assert documented == declared
    table = RouteTable()
    for route in ROUTES:
        if route.takes_body:  # every body route has an example, sent by the tests below
            assert route.example is not None, route.path
            assert route.request is not None, route.path
        for path in route.paths:
            assert table.label(path) == route.label
    assert table.label("/nope") == "other"
    with pytest.raises(ValueError, match="two routes declare /embed"):
        RouteTable((*ROUTES, ROUTES[4]))


def send_chunked(server: ServerProcess, path: str, megabytes: int) -> tuple[int, bytes, int]:
    """Send a chunked body of ``megabytes`` MiB; return the status, body and bytes sent.

    The sender stops as soon as the server answers (it must not wait for the whole body).
    """
    host, port = server.url.removeprefix("http://").split(":")
    block = b"a" * 65536
    start = b'{"input": "'

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + chunk(start)
        )
        try:
            for _ in range(megabytes * 16):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(chunk(block))
                sent += len(block)
            else:
                sock.sendall(chunk(b'"}') + b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were sending
        sock.settimeout(30)
        raw = b""
        try:
            while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < 2:
                data = sock.recv(65536)
                if not data:
                    break
                raw += data
        except (ConnectionResetError, TimeoutError):
            pass
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, sent


def test_every_post_route_bounds_a_chunked_body(
    server: ServerProcess, client: httpx.Client
) -> None:
    paths = post_paths(client)
    assert {"/", "/embed", "/embed_sparse", "/embed_colbert", "/api/embed", "/rerank"} <= set(
        paths
    )
    growth = {}
    for path in paths:
        before = reset_peak(server)
        status, body, sent = send_chunked(server, path, CHUNKED_MB)
        growth[path] = (memory_kb(server)["VmHWM"] - before["VmRSS"]) / 1024
        assert status == 413, (path, body[:300])
        assert sent < CHUNKED_MB * 2**20  # refused before the body ended
        message = json.loads(body.split(b"\r\n", 1)[-1] if body[:1] != b"{" else body)
        assert "larger than" in json.dumps(message), (path, message)
    print("peak RSS growth per route, MB:", {p: round(g, 1) for p, g in growth.items()})
    assert max(growth.values()) < RSS_BOUND_MB, growth
    assert client.get("/health").status_code == 200


def comparable(value: Any) -> Any:
    """Return an answer without the keys that change from request to request."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_every_post_route_answers_a_gzip_body_as_the_plain_one(client: httpx.Client) -> None:
    table = RouteTable()
    for path in post_paths(client):
        route = table.find(path)
        assert route is not None and route.example is not None, path
        raw = json.dumps(route.example).encode()
        plain = client.post(path, content=raw, headers={"content-type": "application/json"})
        packed = client.post(
            path,
            content=gzip.compress(raw),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert plain.status_code == 200, (path, plain.text[:300])
        assert packed.status_code == 200, (path, packed.text[:300])
        assert comparable(packed.json()) == comparable(plain.json()), path
        other = client.post(path, content=raw, headers={"content-encoding": "br"})
        assert other.status_code == 415, (path, other.text[:200])


def test_metrics_time_every_inference_route(server: ServerProcess, client: httpx.Client) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    for route in ROUTES:
        if route.inference:  # each was called by the tests above
            timed = f'llamaembed_request_duration_seconds_count{{route="{route.label}"}}'
            assert timed in text, route.label
        else:
            assert f'request_duration_seconds_count{{route="{route.label}"}}' not in text


# ----------------------------------------------------------------------------- TEI
def test_inference_client_feature_extraction_equals_the_library(
    server: ServerProcess, tiny_m3: Llama
) -> None:
    tei = InferenceClient(model=server.url, token=KEY)
    for text in TEXTS:
        got = tei.feature_extraction(text)
        assert got.shape == (1, tiny_m3.n_embd) and got.dtype == np.float32
        assert cosines(got, tiny_m3.embed_texts([text]))[0] >= 0.9999
    query = tei.feature_extraction("Cats purr.", prompt_name="query", normalize=False)
    expected = tiny_m3.embed_texts(["Cats purr."], normalize=False)  # no query prefix set
    np.testing.assert_allclose(query, expected, rtol=1e-4, atol=1e-5)


def test_tei_embed_all_tokenize_decode_info(client: httpx.Client, tiny_m3: Llama) -> None:
    text = TEXTS[2]
    states = client.post("/embed_all", json={"inputs": [text]}).json()
    tokens = tiny_m3.prepare_texts([text])
    (expected,) = tiny_m3.forward([ModelInput(tokens[0], Want.TOKENS)])
    assert expected.tokens is not None
    np.testing.assert_allclose(np.asarray(states[0], np.float32), expected.tokens, atol=1e-5)

    (pieces,) = client.post("/tokenize", json={"inputs": text}).json()
    assert [p["id"] for p in pieces] == tiny_m3.tokenize(text).tolist()
    assert pieces[0]["special"] and pieces[-1]["special"]  # [CLS] ... [SEP]
    located = [p for p in pieces if p["start"] is not None]
    assert located  # the plain words are found in the input
    for piece in located:
        assert text[piece["start"] : piece["stop"]].lower() == piece["text"].strip().lower()
    ids = [p["id"] for p in pieces]
    decoded = client.post("/decode", json={"ids": [ids, ids[1:-1]]}).json()
    assert decoded == [tiny_m3.detokenize(ids), tiny_m3.detokenize(ids[1:-1])]
    bad = client.post("/decode", json={"ids": [10**9]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_token"

    info = client.get("/info").json()
    assert info["max_input_length"] == tiny_m3.n_ctx
    assert info["model_type"] == {"embedding": {"pooling": tiny_m3.facts.pooling}}
    assert info["max_client_batch_size"] >= 1 and info["model_dtype"] == "F32"


def test_tei_and_cohere_rerank_share_a_path(client: httpx.Client, tiny_reranker: Llama) -> None:
    query, docs = "cats purr", TEXTS
    probabilities = sigmoid(tiny_reranker.rerank(query, docs))
    order = np.argsort(-probabilities, kind="stable").tolist()
    for path in ("/rerank", "/v1/rerank", "/"):
        tei = client.post(path, json={"query": query, "texts": docs, "return_text": True})
        assert tei.status_code == 200, tei.text
        answer = tei.json()
        assert [item["index"] for item in answer] == order
        for item in answer:
            assert set(item) == {"index", "score", "text"} and item["text"] == docs[item["index"]]
            assert math.isclose(item["score"], probabilities[item["index"]], abs_tol=1e-5)
    cohere = client.post("/rerank", json={"query": query, "documents": docs, "top_n": 2}).json()
    assert set(cohere) == {"id", "model", "results", "usage"}
    assert [r["index"] for r in cohere["results"]] == order[:2]
    both = client.post("/rerank", json={"query": query, "documents": docs, "texts": docs})
    assert both.status_code == 400


# ----------------------------------------------------------------------------- Ollama
def test_ollama_client_embeds_and_lists(
    server: ServerProcess, tiny_m3: Llama, model_name: str
) -> None:
    client = ollama.Client(host=server.url, headers=AUTH)
    answer = client.embed(model=model_name, input=TEXTS)
    assert answer.model == model_name and answer.prompt_eval_count > 0
    vectors = np.asarray(answer.embeddings, dtype=np.float32)
    assert cosines(vectors, tiny_m3.embed_texts(TEXTS)).min() >= 0.9999
    one = client.embed(model=f"{model_name}:latest", input="Cats purr.", dimensions=16)
    assert len(one.embeddings[0]) == 16
    legacy = client.embeddings(model=model_name, prompt="Cats purr.")
    raw = tiny_m3.embed_texts(["Cats purr."], normalize=False)
    np.testing.assert_allclose(np.asarray([legacy.embedding]), raw, rtol=1e-4, atol=1e-5)
    listed = client.list()
    assert [m.model for m in listed.models] == [model_name]
    assert listed.models[0].size == Path(tiny_m3.model_path).stat().st_size
    shown = client.show(model_name)
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo is not None
    assert shown.modelinfo[f"{tiny_m3.architecture}.embedding_length"] == tiny_m3.n_embd
    with pytest.raises(ollama.ResponseError) as missing:
        client.embed(model="no-such-model", input="x")
    assert missing.value.status_code == 404 and "no-such-model" in missing.value.error


def test_ollama_routes_answer_errors_in_ollama_shape(server: ServerProcess) -> None:
    url = f"{server.url}/api/embed"
    refused = httpx.post(url, json={"input": "x"})  # no key
    assert refused.status_code == 401 and set(refused.json()) == {"error"}
    blank = httpx.post(url, json={"input": ["  "]}, headers=AUTH)
    assert blank.status_code == 400 and set(blank.json()) == {"error"}
    assert "nothing to embed" in blank.json()["error"]
    version = httpx.get(f"{server.url}/api/version", headers=AUTH).json()
    assert set(version) == {"version"}


def test_every_text_route_counts_its_cut_inputs(server: ServerProcess, client: httpx.Client) -> None:
    """A truncation is counted in the metrics whatever route asked, not logged per request."""

    def counted() -> float:
        found = re.search(r"llamaembed_inputs_truncated_total\{[^}]*\} (\S+)", client.get("/metrics").text)
        return float(found.group(1)) if found else 0.0

    long_text = "word " * 2000
    for path, body in (
        ("/v1/embeddings", {"input": long_text}),
        ("/embed", {"inputs": long_text, "truncate": True}),
        ("/api/embed", {"input": long_text}),
        ("/api/embeddings", {"prompt": long_text}),
    ):
        before = counted()
        assert client.post(path, json=body).status_code == 200, path
        assert counted() == before + 1, path
    assert "truncated" not in server.output  # counted, not logged
