"""Prometheus metrics of the server, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DURATIONS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKENS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    """The counters, gauges and histograms ``/metrics`` exposes."""

    def __init__(self) -> None:
        # The *_created series double the output and no dashboard reads them.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llamaembed_requests",
            "Requests answered, by route and status",
            ["route", "status"],
            registry=r,
        )
        self.failures = Counter(
            "llamaembed_request_failures",
            "Requests that failed, by route and reason",
            ["route", "reason"],
            registry=r,
        )
        self.queue_size = Gauge(
            "llamaembed_queue_size", "Inputs waiting in the batching queue", ["model"], registry=r
        )
        self.queue_tokens = Gauge(
            "llamaembed_queue_tokens",
            "Tokens waiting in the batching queue (bounded by --max-queue-tokens)",
            ["model"],
            registry=r,
        )
        self.batch_size = Histogram(
            "llamaembed_batch_size",
            "Inputs per model run",
            ["model"],
            buckets=_SIZES,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "llamaembed_batch_tokens",
            "Tokens per model run",
            ["model"],
            buckets=_TOKENS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "llamaembed_queue_duration_seconds",
            "Time a request waited before its first input ran",
            ["model"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "llamaembed_inference_duration_seconds",
            "Time of one model run",
            ["model"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.request_duration = Histogram(
            "llamaembed_request_duration_seconds",
            "Time from a request's arrival to its answer",
            ["route"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.tokens = Counter(
            "llamaembed_tokens", "Tokens run through the model", ["model"], registry=r
        )
        self.inputs = Counter(
            "llamaembed_inputs",
            "Inputs (texts or pairs) run through the model",
            ["model"],
            registry=r,
        )
        self.truncated = Counter(
            "llamaembed_inputs_truncated",
            "Inputs longer than the context, cut to it (truncate=true)",
            ["model"],
            registry=r,
        )
        self.dropped = Counter(
            "llamaembed_inputs_dropped",
            "Queued inputs dropped because their client disconnected",
            ["model"],
            registry=r,
        )

    def observe_batch(self, model: str, inputs: int, tokens: int, seconds: float) -> None:
        """Record one model run."""
        self.batch_size.labels(model).observe(inputs)
        self.batch_tokens.labels(model).observe(tokens)
        self.inference_duration.labels(model).observe(seconds)
        self.tokens.labels(model).inc(tokens)
        self.inputs.labels(model).inc(inputs)

    def render(self) -> bytes:
        """Return the metrics in Prometheus' text format."""
        return generate_latest(self.registry)
