"""What the server serves: its configuration, the served models and its life cycle.

``ServerState`` opens the configured models (or adopts models already open), starts a
queue for each, and says which model answers a request: 503 while loading or shutting
down, 404 for a model it does not serve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..batch import BatchEmbedder
from ..hub.spec import ModelSpec
from .errors import ApiError
from .infer import Limits, Served, start
from .metrics import Metrics

__all__ = ["KINDS", "HttpLimits", "ServerConfig", "ServerState"]

KINDS = ("embedding", "rerank")


@dataclass(frozen=True)
class HttpLimits:
    """What one connection may cost before the app sees a request (see ``serve.protocol``)."""

    max_header_bytes: int = 16 * 1024  # request line and headers; past it: 431, closed
    max_headers: int = 100  # header lines; past it: 431, closed
    header_timeout: float = 10.0  # seconds from connecting (or a request's first byte)
    body_timeout: float = 60.0  # seconds from the end of the headers to the end of the body
    keep_alive: float = 30.0  # seconds an idle connection stays open between requests
    max_connections: int = 1024  # open at once; a request past them gets 503

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_headers", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout", "body_timeout", "keep_alive"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds")


@dataclass(frozen=True)
class ServerConfig:
    """What the server serves and its limits."""

    embedding: ModelSpec | None = None
    rerank: ModelSpec | None = None
    api_keys: tuple[str, ...] = ()
    max_batch_tokens: int = 4096
    max_client_batch: int = 2048
    max_request_tokens: int = 300_000  # as OpenAI's embeddings API
    max_queue_tokens: int | None = None  # None: twice max_request_tokens
    max_body_bytes: int = 16 * 2**20
    batch_wait: float = 0.002
    graceful_timeout: float = 30.0  # after SIGTERM, for requests in flight; then 503
    http: HttpLimits = field(default_factory=HttpLimits)

    def __post_init__(self) -> None:
        sizes = ("max_client_batch", "max_batch_tokens", "max_body_bytes", "max_request_tokens")
        for name in sizes:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.batch_wait <= 1:
            raise ValueError(f"batch_wait must be within 0 and 1 second, got {self.batch_wait}")
        if self.graceful_timeout < 0:
            raise ValueError(f"graceful_timeout must be >= 0, got {self.graceful_timeout}")
        if self.queue_tokens < self.max_request_tokens:
            raise ValueError(
                f"max_queue_tokens ({self.queue_tokens}) must hold at least one full request "
                f"(max_request_tokens {self.max_request_tokens})"
            )

    @property
    def queue_tokens(self) -> int:
        """Return the tokens the queue holds at most."""
        if self.max_queue_tokens is None:
            return 2 * self.max_request_tokens
        return self.max_queue_tokens

    @property
    def limits(self) -> Limits:
        """Return the queue's settings."""
        return Limits(
            self.max_batch_tokens, self.queue_tokens, self.max_request_tokens, self.batch_wait
        )


class ServerState:
    """The served models and the server's life: loading, ready, shutting down."""

    def __init__(self, config: ServerConfig, models: Mapping[str, BatchEmbedder] | None = None):
        given = dict(models or {})
        if unknown := set(given) - set(KINDS):
            raise ValueError(f"models are keyed by kind ({', '.join(KINDS)}), not {unknown}")
        specs = {"embedding": config.embedding, "rerank": config.rerank}
        if not given and not any(specs.values()):
            raise ValueError("nothing to serve: give an embedding model, a reranker or both")
        self.config = config
        self.metrics = Metrics()
        self.models: dict[str, Served] = {}
        self.ready = False
        self.shutting_down = False
        self.load_error: BaseException | None = None
        if given:  # already open: serve them now, the caller keeps ownership
            for kind, model in given.items():
                self._serve(kind, specs[kind] or model.spec, model, owned=False)
            self.ready = True

    def open_models(self) -> None:
        """Open each configured model and start its queue (runs in a thread at start-up)."""
        config = self.config
        for kind, spec in (("embedding", config.embedding), ("rerank", config.rerank)):
            if spec is not None:
                model = spec.open()
                if not isinstance(model, BatchEmbedder):
                    model.close()
                    raise ValueError(f"{spec.name} cannot be served: it has no batch interface")
                self._serve(kind, spec, model, owned=True)
        self.ready = True

    def _serve(self, kind: str, spec: ModelSpec, model: BatchEmbedder, *, owned: bool) -> None:
        refusal = None
        if kind == "rerank" and not model.capabilities.rerank:
            refusal = f"{spec.name} is not a cross-encoder (rank pooling)"
        elif kind == "embedding" and model.capabilities.rerank:
            refusal = f"{spec.name} is a cross-encoder: serve it with --rerank"
        if refusal is not None:
            if owned:
                model.close()
            raise ValueError(refusal)
        self.models[kind] = start(kind, spec, model, self.config.limits, self.metrics, owned=owned)

    def close(self, *, drain: bool = True) -> None:
        """Stop the queues (after their work, or dropping it); free the models we opened."""
        for served in self.models.values():
            served.close(drain=drain)

    def model_for(self, kind: str, requested: str | None) -> Served:
        """Return the served model of a kind that answers to a name, or raise ApiError."""
        if self.shutting_down:
            raise ApiError(
                503, "the server is shutting down", type_="server_error", code="shutting_down"
            )
        if not self.ready:
            raise ApiError(
                503,
                "the model is still loading; retry shortly",
                type_="server_error",
                code="model_loading",
                headers={"Retry-After": "1"},
            )
        served = self.models.get(kind)
        if served is None:
            hint = "--rerank MODEL" if kind == "rerank" else "an embedding MODEL"
            raise ApiError(
                404,
                f"this server has no {kind} model: start it with {hint}",
                param="model",
                code="model_not_found",
            )
        if not served.answers_to(requested):
            raise ApiError(
                404,
                f"the model {requested!r} is not served here; the {kind} model is "
                f"{served.spec.name!r} (GET /v1/models lists them)",
                param="model",
                code="model_not_found",
            )
        return served
