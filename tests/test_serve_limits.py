"""The server under hostile load, as a real process on 127.0.0.1: every bound a client meets.

Oversized and unfinished requests, a 60 MB body of token ids, a full queue, SIGTERM past
the grace period, compressed bodies and the smaller rules. Each test ends by checking that
the server still answers ``/health`` at once.
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from server_process import ServerProcess
from test_serve import AUTH, KEY, assert_error, cosines, long_texts, sentences

from llamaembed import Llama

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 12
MAX_REQUEST_TOKENS = 4096
# Generous bounds for "at once": liveness, not speed (the CI machine may be busy).
PROMPT = 3.0


@pytest.fixture(scope="module")
def server(tiny_encoder_path: Path, tiny_reranker_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        tiny_encoder_path,
        *("--rerank", tiny_reranker_path),
        *("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)),
        *("--max-connections", str(MAX_CONNECTIONS), "--max-header-kb", "16"),
        *("--max-request-tokens", str(MAX_REQUEST_TOKENS), "--max-body-mb", "64"),
        api_key=KEY,
    ) as process:
        yield process


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def assert_healthy(server: ServerProcess) -> None:
    """The server answers /health with 200, and at once."""
    started = time.monotonic()
    response = httpx.get(f"{server.url}/health", timeout=PROMPT)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < PROMPT


def memory_kb(server: ServerProcess) -> dict[str, int]:
    """Return the server's VmRSS and VmHWM (its peak RSS), in kB."""
    fields = {}
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def reset_peak(server: ServerProcess) -> dict[str, int]:
    """Reset the server's VmHWM to its current RSS (Linux's clear_refs) and return both."""
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")
    return memory_kb(server)


def read_response(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Return what the server sends until it closes the connection, and when it closed."""
    sock.settimeout(timeout)
    started = time.monotonic()
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks), time.monotonic() - started


def error_of(raw: bytes) -> tuple[int, dict]:
    """Return the status and the error object of a raw HTTP response in our shape."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return status, error


# ----------------------------------------------------------------------------- headers
def test_oversized_headers_are_refused_before_they_are_read(server: ServerProcess) -> None:
    host, port = address(server)
    # One header line of 20 KB, read whole: 431 in our shape.
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        raw, _ = read_response(sock, 10)
    status, error = error_of(raw)
    assert status == 431 and error["code"] == "headers_too_large"
    # 101 small header lines: the same.
    lines = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
        raw, _ = read_response(sock, 10)
    assert error_of(raw)[0] == 431

    # The attack: 8 clients at once each send a 64 MiB Authorization header.
    before = reset_peak(server)
    sent = [0] * 8

    def attack(i: int) -> None:
        with socket.create_connection((host, port)) as sock:
            sock.settimeout(10)
            try:
                sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
                block = b"A" * 65536
                for _ in range(1024):  # 64 MiB
                    sock.sendall(block)
                    sent[i] += len(block)
            except OSError:
                pass  # the server closed the connection: what it should do

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        assert_healthy(server)
        time.sleep(0.05)
    # Each connection was cut long before its 64 MiB (kernel buffers hold a few MB).
    assert max(sent) < 16 * 2**20, sent
    after = memory_kb(server)
    assert after["VmHWM"] - before["VmRSS"] < 50_000, (before, after)  # under 50 MB more
    assert_healthy(server)


# ----------------------------------------------------------------------------- timeouts
def test_unfinished_requests_are_closed_within_their_limits(server: ServerProcess) -> None:
    host, port = address(server)
    # Headers that never end.
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n")
        raw, waited = read_response(sock, 30)
    status, error = error_of(raw)
    assert status == 408 and error["code"] == "request_timeout"
    assert "headers" in error["message"]
    assert HEADER_TIMEOUT - 0.2 < waited < HEADER_TIMEOUT + PROMPT
    # A body shorter than its Content-Length.
    with socket.create_connection((host, port)) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + KEY.encode()
            + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"input"'
        )
        raw, waited = read_response(sock, 30)
    status, error = error_of(raw)
    assert status == 408 and "body" in error["message"]
    assert BODY_TIMEOUT - 0.2 < waited < BODY_TIMEOUT + PROMPT
    # A request answered before its body (a wrong key) is not answered twice: its
    # connection is closed quietly once the body is overdue.
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        raw, waited = read_response(sock, 30)
    assert raw.startswith(b"HTTP/1.1 401") and raw.count(b"HTTP/1.1 ") == 1, raw
    assert waited < BODY_TIMEOUT + PROMPT
    # A connection that never sends a byte is closed as well, without an answer.
    with socket.create_connection((host, port)) as sock:
        raw, waited = read_response(sock, 30)
    assert raw == b"" and waited < HEADER_TIMEOUT + PROMPT
    # A slow but steady request within the limits is served.
    body = json.dumps({"input": "cats purr"}).encode()
    with socket.create_connection((host, port)) as sock:
        head = (
            f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        for part in (head[:20], head[20:], body[:5], body[5:]):
            sock.sendall(part)
            time.sleep(0.3)
        raw, _ = read_response(sock, 30)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert_healthy(server)


def test_connections_past_the_limit_get_503_in_our_shape(server: ServerProcess) -> None:
    host, port = address(server)
    idle = [socket.create_connection((host, port)) for _ in range(MAX_CONNECTIONS)]
    try:
        refused = httpx.get(f"{server.url}/health", timeout=PROMPT)
        error = assert_error(refused, 503)
        assert error["code"] == "too_many_connections"
        assert refused.headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + PROMPT
    while httpx.get(f"{server.url}/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


# ----------------------------------------------------------------------------- bodies
def test_a_60_mb_body_of_token_ids_is_refused_with_bounded_memory(
    server: ServerProcess, tiny_encoder: Llama
) -> None:
    ids = list(range(1000, 6900))  # 5,900 ids
    body = orjson.dumps({"input": [ids] * 2048})
    assert len(body) > 60_000_000
    before = reset_peak(server)
    started = time.monotonic()
    response = httpx.post(
        f"{server.url}/v1/embeddings",
        content=body,
        headers={**AUTH, "content-type": "application/json"},
        timeout=60,
    )
    error = assert_error(response, 413)
    assert error["code"] == "too_many_values"
    after = memory_kb(server)
    # The body is held twice at most (as read, then decoded) and never parsed: peak RSS
    # grows by under 2.5 times its size, where parsing it took 40 times.
    assert after["VmHWM"] - before["VmRSS"] < 2.5 * len(body) / 1000, (before, after)
    assert time.monotonic() - started < 30
    assert_healthy(server)
    # Token ids within the limit are served, and equal the texts they came from.
    texts = sentences(4, seed=3)
    id_lists = [tiny_encoder.tokenize(t).tolist() for t in texts]
    served = httpx.post(f"{server.url}/v1/embeddings", json={"input": id_lists}, headers=AUTH)
    got = np.array([d["embedding"] for d in served.json()["data"]])
    assert cosines(got, tiny_encoder.embed_texts(texts)).min() >= 0.99999


def test_a_request_over_its_token_limit_is_413_before_it_is_tokenised(
    server: ServerProcess,
) -> None:
    # 60 texts of ~100 tokens: over the 4,096 a request may hold.
    texts = sentences(60, seed=4, length=(100, 101))
    response = httpx.post(f"{server.url}/v1/embeddings", json={"input": texts}, headers=AUTH)
    error = assert_error(response, 413)
    assert error["code"] == "too_many_tokens" and "--max-request-tokens" in error["message"]
    ranked = httpx.post(
        f"{server.url}/v1/rerank", json={"query": "cats", "documents": texts}, headers=AUTH
    )
    assert assert_error(ranked, 413)["code"] == "too_many_tokens"
    fits = httpx.post(f"{server.url}/v1/embeddings", json={"input": texts[:20]}, headers=AUTH)
    assert fits.status_code == 200
    assert_healthy(server)


def test_gzip_and_deflate_bodies_are_decoded(server: ServerProcess, tiny_encoder: Llama) -> None:
    texts = sentences(8, seed=5)
    raw = json.dumps({"input": texts}).encode()
    expected = tiny_encoder.embed_texts(texts)
    url = f"{server.url}/v1/embeddings"
    plain = {**AUTH, "content-type": "application/json"}
    for encoding, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        response = httpx.post(url, content=packed, headers={**plain, "content-encoding": encoding})
        assert response.status_code == 200, response.text
        got = np.array([d["embedding"] for d in response.json()["data"]])
        assert cosines(got, expected).min() >= 0.99999
    brotli = httpx.post(url, content=raw, headers={**plain, "content-encoding": "br"})
    assert assert_error(brotli, 415)["code"] == "unsupported_encoding"
    corrupt = httpx.post(url, content=raw, headers={**plain, "content-encoding": "gzip"})
    assert assert_error(corrupt, 400)["code"] == "invalid_encoding"
    cut = httpx.post(
        url, content=gzip.compress(raw)[:-20], headers={**plain, "content-encoding": "gzip"}
    )
    assert assert_error(cut, 400)["code"] == "invalid_encoding"
    # 70 MB of zeros packs into 70 kB: decoding stops at the 64 MB limit.
    bomb = gzip.compress(b'{"input": "' + b"0" * 70_000_000 + b'"}')
    assert len(bomb) < 200_000
    before = reset_peak(server)
    exploded = httpx.post(url, content=bomb, headers={**plain, "content-encoding": "gzip"})
    assert assert_error(exploded, 413)["code"] == "body_too_large"
    assert memory_kb(server)["VmHWM"] - before["VmRSS"] < 2.5 * 64 * 1024  # kB
    assert_healthy(server)


# ----------------------------------------------------------------------------- small rules
@pytest.mark.parametrize("text", ["", "   ", "\t\n", "\x01\x02\x03", "\u0000", " \x7f\u3000 "])
def test_blank_inputs_are_refused_alike(server: ServerProcess, text: str) -> None:
    url = f"{server.url}/v1/embeddings"
    error = assert_error(httpx.post(url, json={"input": ["cats", text]}, headers=AUTH), 400)
    assert error["code"] == "empty_input" and "index 1" in error["message"]
    ranked = httpx.post(
        f"{server.url}/v1/rerank", json={"query": "cats", "documents": ["a", text]}, headers=AUTH
    )
    assert assert_error(ranked, 400)["code"] == "empty_input"
    query = httpx.post(
        f"{server.url}/v1/rerank", json={"query": text, "documents": ["a"]}, headers=AUTH
    )
    assert assert_error(query, 400)["code"] == "empty_input"
    # Text with something in it, whitespace and controls around it, is embedded.
    kept = httpx.post(url, json={"input": f"\x01 {text} cats \x02"}, headers=AUTH)
    assert kept.status_code == 200


def test_messages_say_what_was_wrong(server: ServerProcess) -> None:
    url = f"{server.url}/v1/embeddings"
    plain = {**AUTH, "content-type": "application/json"}
    surrogate = httpx.post(url, content=b'{"input": "a \\ud800 b"}', headers=plain)
    error = assert_error(surrogate, 400)
    assert error["code"] == "invalid_json" and "surrogate" in error["message"]
    huge = httpx.post(url, json={"input": [[101, 2**63, 102]]}, headers=AUTH)
    error = assert_error(huge, 400)
    assert error["code"] == "invalid_token" and "too large" in error["message"]
    assert "C long" not in error["message"]
    latin = httpx.post(url, content=b'{"input": "caf\xe9"}', headers=plain)
    assert "UTF-8" in assert_error(latin, 400)["message"]


def test_openapi_declares_the_bearer_scheme_and_head_health_answers(
    server: ServerProcess,
) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the server's keys (--api-key, --api-key-file).",
    }
    assert schema["paths"]["/v1/embeddings"]["post"]["security"] == [{"bearer": []}]
    assert schema["paths"]["/v1/rerank"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    head = httpx.head(f"{server.url}/health")
    assert head.status_code == 200 and head.content == b""


# ----------------------------------------------------------------------------- queue
# Words that are one WordPiece token each: 600 of them are 512 tokens once truncated.
ONE_TOKEN_WORDS = "the cat dog sat on mat red blue green house car tree water fire light music"
RUN = 16 * 512  # tokens of one run: a whole request of 16 inputs (seconds at one thread)


def exact_texts(n: int, seed: int) -> list[str]:
    """Return n texts of exactly 512 tokens each for MiniLM (after truncation)."""
    rng = np.random.default_rng(seed)
    words = ONE_TOKEN_WORDS.split()
    return [" ".join(rng.choice(words, size=600).tolist()) for _ in range(n)]


@pytest.fixture()
def queue_server(minilm_f16_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        minilm_f16_path,
        *("--threads", "1", "--max-client-batch", "16", "--max-batch-tokens", str(RUN)),
        *("--max-request-tokens", str(RUN), "--max-queue-tokens", str(RUN)),
    ) as process:
        yield process


def _post_in_thread(url: str, body: object) -> tuple[threading.Thread, list[httpx.Response]]:
    out: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: out.append(httpx.post(url, json=body, timeout=300)))
    thread.start()
    return thread, out


def _queued_tokens(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("llamaembed_queue_tokens{"):
            return float(line.split()[-1])
    return 0.0


def _wait_for_queue(server: ServerProcess, tokens: int) -> None:
    deadline = time.monotonic() + 60
    while _queued_tokens(server) != tokens:
        assert time.monotonic() < deadline, f"the queue never held {tokens} tokens"
        time.sleep(0.02)


def test_a_full_queue_refuses_at_once_with_a_sane_retry_after(
    queue_server: ServerProcess, minilm: Llama
) -> None:
    url = f"{queue_server.url}/v1/embeddings"
    assert len(minilm.tokenize(exact_texts(1, 0)[0])) == 602  # 600 words, CLS and SEP
    running, running_out = _post_in_thread(url, {"input": exact_texts(16, 20)})
    _wait_for_queue(queue_server, 0)  # taken as one run, which lasts seconds
    time.sleep(0.2)
    half = _post_in_thread(url, {"input": exact_texts(8, 21)})
    _wait_for_queue(queue_server, RUN // 2)
    # 12 inputs do not fit in the half left: refused while they are tokenised.
    refused = httpx.post(url, json={"input": exact_texts(12, 22)})
    error = assert_error(refused, 429)
    assert error["type"] == "rate_limit_error" and "needs" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # 8 more fill it; then even a body that is not JSON is refused, unparsed.
    other_half = _post_in_thread(url, {"input": exact_texts(8, 23)})
    _wait_for_queue(queue_server, RUN)
    full = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert assert_error(full, 429)["type"] == "rate_limit_error"
    assert 1 <= int(full.headers["retry-after"]) <= 60
    assert running.is_alive(), "the first run finished before the checks: far too fast"
    assert_healthy(queue_server)
    # Every request admitted is answered, in full and right.
    for thread, _ in (half, other_half):
        thread.join()
    running.join()
    assert running_out[0].status_code == 200
    got = np.array([d["embedding"] for d in half[1][0].json()["data"]])
    assert cosines(got, minilm.embed_texts(exact_texts(8, 21))).min() >= 0.99999
    assert other_half[1][0].status_code == 200


def test_sigterm_past_the_grace_period_answers_503(minilm_f16_path: Path) -> None:
    process = ServerProcess(minilm_f16_path, "--threads", "1", "--graceful-timeout", "1")
    url = f"{process.url}/v1/embeddings"
    thread, out = _post_in_thread(url, {"input": long_texts(64, 40)})  # seconds of work
    time.sleep(0.3)
    process.process.send_signal(signal.SIGTERM)
    thread.join()
    assert process.stop(timeout=60) == 0
    error = assert_error(out[0], 503)
    assert error["code"] == "shutting_down" and error["type"] == "server_error"
    assert "Internal Server Error" not in process.output
