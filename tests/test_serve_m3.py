"""bge-m3's routes on a real server process: TEI's /embed_sparse and /embed_colbert.

Answers are checked against ``Llama.encode_m3`` in this process (itself checked against
FlagEmbedding in test_m3.py); a model without heads answers 400 in OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_process import ServerProcess
from texts import stdlib_sentences

from llamaembed import Llama

TEXTS = stdlib_sentences(12)


@pytest.fixture(scope="module")
def client(tiny_m3_path: Path) -> Iterator[httpx.Client]:
    with (
        ServerProcess(tiny_m3_path, "--query-prefix", "q: ") as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        yield http


def test_embed_sparse_is_tei_shaped_and_equals_encode_m3(client: httpx.Client, tiny_m3: Llama) -> None:
    response = client.post("/embed_sparse", json={"inputs": TEXTS})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tiny_m3.encode_m3(TEXTS)["lexical_weights"]
    assert len(body) == len(TEXTS)
    for got, want in zip(body, expected, strict=True):
        assert [item["index"] for item in got] == sorted(int(k) for k in want)
        for item in got:
            assert set(item) == {"index", "value"}
            assert item["value"] == pytest.approx(want[str(item["index"])], rel=1e-5, abs=1e-6)
    # one text, and the query prefix through prompt_name
    one = client.post("/embed_sparse", json={"inputs": "socket", "prompt_name": "query"}).json()
    want = tiny_m3.encode_m3("q: socket")["lexical_weights"]
    assert {str(i["index"]): i["value"] for i in one[0]} == pytest.approx(want, rel=1e-5)


def test_embed_colbert_gives_unit_token_vectors(client: httpx.Client, tiny_m3: Llama) -> None:
    response = client.post("/embed_colbert", json={"inputs": TEXTS[:4]})
    assert response.status_code == 200, response.text
    expected = tiny_m3.encode_m3(TEXTS[:4], return_sparse=False, return_colbert_vecs=True)
    for got, want in zip(response.json(), expected["colbert_vecs"], strict=True):
        matrix = np.asarray(got, dtype=np.float32)
        assert matrix.shape == want.shape
        np.testing.assert_allclose(matrix, want, atol=1e-6)


def test_m3_requests_share_the_queue_with_embeddings(client: httpx.Client, tiny_m3: Llama) -> None:
    def one(i: int) -> tuple[str, httpx.Response]:
        route = ("/embed_sparse", "/embed_colbert", "/v1/embeddings")[i % 3]
        key = "input" if route == "/v1/embeddings" else "inputs"
        return route, client.post(route, json={key: [TEXTS[i % len(TEXTS)]]})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(36)))
    dense = tiny_m3.embed_texts(TEXTS)
    for i, (route, response) in enumerate(answers):
        assert response.status_code == 200, response.text
        if route == "/v1/embeddings":
            vector = np.asarray(response.json()["data"][0]["embedding"])
            assert float(vector @ dense[i % len(TEXTS)]) > 0.9999


def test_bad_m3_requests_are_our_errors(client: httpx.Client) -> None:
    for body, status in (
        ({"inputs": []}, 400),
        ({"inputs": ["  "]}, 400),
        ({"inputs": "x", "prompt_name": "passage"}, 400),
        ({"inputs": 3}, 422),
        ({"inputs": ["word " * 200]}, 400),  # over the context, truncate false (TEI's default)
    ):
        response = client.post("/embed_sparse", json=body)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    cut = client.post("/embed_sparse", json={"inputs": ["word " * 200], "truncate": True})
    assert cut.status_code == 200


def test_a_model_without_heads_answers_400(tiny_encoder_path: Path) -> None:
    with ServerProcess(tiny_encoder_path) as server, httpx.Client(base_url=server.url) as http:
        for route in ("/embed_sparse", "/embed_colbert"):
            response = http.post(route, json={"inputs": ["hello"]})
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "missing_head"
        schema = http.get("/openapi.json").json()
        assert {"/embed_sparse", "/embed_colbert"} <= set(schema["paths"])


def test_colbert_answers_are_bounded_in_size(client: httpx.Client, tiny_m3: Llama) -> None:
    from llamaembed.serve.infer import COLBERT_MAX_FLOATS

    # 1,100 inputs cut to the tiny model's 128 tokens: 140,800 tokens, whose ColBERT
    # vectors (64 floats a token) would be over COLBERT_MAX_FLOATS; the lexical weights
    # of the same request are small and answered.
    body = {"inputs": ["word " * 200] * 1100, "truncate": True}
    assert 1100 * tiny_m3.n_ctx * tiny_m3.n_embd > COLBERT_MAX_FLOATS
    refused = client.post("/embed_colbert", json=body)
    assert refused.status_code == 413, refused.text[:300]
    error = refused.json()["error"]
    assert error["code"] == "too_many_tokens" and "ColBERT" in error["message"]
    assert client.post("/embed_sparse", json=body).status_code == 200
