"""What the server serves: its configuration, the served models and its life cycle.

``ServerState`` opens the configured models (or adopts models already open), starts a
queue for each, and says which model answers a request: 503 while loading or shutting
down, 404 for a model it does not serve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..embedder import Embedder
from ..hub.spec import ModelSpec
from .errors import ApiError
from .infer import Limits, Served, start
from .metrics import Metrics

__all__ = ["KINDS", "ServerConfig", "ServerState"]

KINDS = ("embedding", "rerank")


@dataclass(frozen=True)
class ServerConfig:
    """What the server serves and its limits."""

    embedding: ModelSpec | None = None
    rerank: ModelSpec | None = None
    api_keys: tuple[str, ...] = ()
    max_batch_tokens: int = 4096
    max_client_batch: int = 2048
    max_queue: int = 16384
    max_body_bytes: int = 64 * 2**20
    batch_wait: float = 0.002

    def __post_init__(self) -> None:
        if self.max_client_batch < 1 or self.max_batch_tokens < 1 or self.max_body_bytes < 1:
            raise ValueError("max_client_batch, max_batch_tokens, max_body_bytes must be >= 1")
        if not 0 <= self.batch_wait <= 1:
            raise ValueError(f"batch_wait must be within 0 and 1 second, got {self.batch_wait}")
        if self.max_queue < self.max_client_batch:
            raise ValueError(
                f"max_queue ({self.max_queue}) must hold at least one full request "
                f"(max_client_batch {self.max_client_batch})"
            )

    @property
    def limits(self) -> Limits:
        """Return the queue's settings."""
        return Limits(self.max_batch_tokens, self.max_queue, self.batch_wait)


class ServerState:
    """The served models and the server's life: loading, ready, shutting down."""

    def __init__(self, config: ServerConfig, models: Mapping[str, Embedder] | None = None):
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
                self._serve(kind, spec, spec.open(), owned=True)
        self.ready = True

    def _serve(self, kind: str, spec: ModelSpec, model: Embedder, *, owned: bool) -> None:
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

    def close(self) -> None:
        """Finish queued work, stop the queues, free the models the server opened."""
        for served in self.models.values():
            served.close()

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
