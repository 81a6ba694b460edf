"""The route table: each route declared once, read by everything that treats routes alike.

A :class:`Route` says its path and aliases, methods, metrics label, handler, whether it is
inference, its request and response shapes and the error shape its clients read. From
the table (``ROUTES``):

- ``create_app`` registers every path and alias with FastAPI (and so documents it in
  OpenAPI);
- the guard (``serve.guard``) reads every body that a route takes through one bounded,
  decoding reader, checks keys except on open routes, labels and counts each request,
  times inference and calls inference handlers directly (the hot path);
- errors are answered in the route's shape (OpenAI's, or Ollama's ``{"error": ...}``).

Adding a route is one entry here: it is bounded, measured and documented with no other
edit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from . import ollama, openai, status, tei
from .errors import ErrorShape
from .schemas import (
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OllamaShowRequest,
    RerankRequest,
    RerankResponse,
    SimpleToken,
    SparseValue,
    TeiDecodeRequest,
    TeiEmbedRequest,
    TeiRerankItem,
    TeiRootRequest,
    TeiTokenizeRequest,
)

__all__ = ["DOC_PATHS", "ROUTES", "Route", "RouteTable"]

Endpoint = Callable[[Request], Awaitable[Response]]

# The framework's own documentation pages: open to anyone, like /health and /metrics.
DOC_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})


@dataclass(frozen=True)
class Route:
    """One route: everything the app, the guard, the metrics and the docs need of it."""

    path: str
    handler: Endpoint
    label: str  # the metrics label of its requests
    methods: tuple[str, ...] = ("POST",)
    aliases: tuple[str, ...] = ()
    inference: bool = False  # runs the model: timed, and called directly by the guard
    request: type[BaseModel] | None = None  # the body's shape (documented in OpenAPI)
    response: Any = None  # the answer's shape (documented in OpenAPI)
    errors: ErrorShape = "openai"
    open: bool = False  # answered without an API key (probes, scrapers)
    example: dict[str, Any] | None = None  # a body it answers: in OpenAPI, and tests send it

    @property
    def paths(self) -> tuple[str, ...]:
        """Return the path and its aliases."""
        return (self.path, *self.aliases)

    @property
    def takes_body(self) -> bool:
        """Return True when the route reads a request body."""
        return "POST" in self.methods


ROUTES: tuple[Route, ...] = (
    # OpenAI, Cohere / Jina
    Route(
        "/v1/embeddings",
        openai.embeddings,
        "embeddings",
        aliases=("/embeddings",),
        inference=True,
        request=EmbeddingRequest,
        response=EmbeddingResponse,
        example={"input": ["Cats purr.", "Rust has no GC."]},
    ),
    Route(
        "/v1/rerank",
        openai.rerank,
        "rerank",
        aliases=("/rerank",),
        inference=True,
        request=RerankRequest,
        response=RerankResponse | list[TeiRerankItem],
        example={
            "query": "which language lacks a GC",
            "documents": ["Cats purr.", "Rust has no GC."],
        },
    ),
    Route("/v1/models", openai.models, "models", methods=("GET",), response=ModelList),
    # text-embeddings-inference
    Route(
        "/",
        tei.root,
        "tei_root",
        inference=True,
        request=TeiRootRequest,
        response=list[list[float]] | list[TeiRerankItem],
        example={"inputs": "Cats purr."},
    ),
    Route(
        "/embed",
        tei.embed,
        "embed",
        inference=True,
        request=TeiEmbedRequest,
        response=list[list[float]],
        example={"inputs": ["Cats purr.", "Rust has no GC."]},
    ),
    Route(
        "/embed_all",
        tei.embed_all,
        "embed_all",
        inference=True,
        request=TeiEmbedRequest,
        response=list[list[list[float]]],
        example={"inputs": "Cats purr."},
    ),
    Route(
        "/embed_sparse",
        tei.embed_sparse,
        "embed_sparse",
        inference=True,
        request=TeiEmbedRequest,
        response=list[list[SparseValue]],
        example={"inputs": ["Cats purr."]},
    ),
    Route(
        "/embed_colbert",
        tei.embed_colbert,
        "embed_colbert",
        inference=True,
        request=TeiEmbedRequest,
        response=list[list[list[float]]],
        example={"inputs": ["Cats purr."]},
    ),
    Route(
        "/tokenize",
        tei.tokenize,
        "tokenize",
        request=TeiTokenizeRequest,
        response=list[list[SimpleToken]],
        example={"inputs": "Cats purr."},
    ),
    Route(
        "/decode",
        tei.decode,
        "decode",
        request=TeiDecodeRequest,
        response=list[str],
        example={"ids": [5, 6, 7]},
    ),
    Route("/info", tei.info, "info", methods=("GET",)),
    # Ollama
    Route(
        "/api/embed",
        ollama.embed,
        "ollama_embed",
        inference=True,
        request=OllamaEmbedRequest,
        errors="ollama",
        example={"input": ["Cats purr.", "Rust has no GC."]},
    ),
    Route(
        "/api/embeddings",
        ollama.embeddings,
        "ollama_embeddings",
        inference=True,
        request=OllamaEmbeddingsRequest,
        errors="ollama",
        example={"prompt": "Cats purr."},
    ),
    Route("/api/tags", ollama.tags, "ollama_tags", methods=("GET",), errors="ollama"),
    Route(
        "/api/show",
        ollama.show,
        "ollama_show",
        request=OllamaShowRequest,
        errors="ollama",
        example={},
    ),
    Route("/api/version", ollama.version, "ollama_version", methods=("GET",), errors="ollama"),
    # the server itself
    Route("/health", status.health, "health", methods=("GET", "HEAD"), open=True),
    Route("/metrics", status.prometheus, "metrics", methods=("GET",), open=True),
)


class RouteTable:
    """The routes by path (aliases included), for the guard and the error handler."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = routes
        self.by_path: dict[str, Route] = {}
        for route in routes:
            for path in route.paths:
                if path in self.by_path:
                    raise ValueError(f"two routes declare {path}")
                self.by_path[path] = route

    def find(self, path: str) -> Route | None:
        """Return the route of a path (or alias), or None."""
        return self.by_path.get(path)

    def label(self, path: str) -> str:
        """Return the metrics label of a request path ("other" for an unknown one)."""
        route = self.by_path.get(path)
        return route.label if route is not None else "other"

    def error_shape(self, path: str) -> ErrorShape:
        """Return the error shape of a request path (OpenAI's for an unknown one)."""
        route = self.by_path.get(path)
        return route.errors if route is not None else "openai"
