"""``llamaembed serve``: the HTTP server's command (options, keys, then the runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import errors, gpu_layers_option


# ----------------------------------------------------------------------------- serve
@click.command()
@click.argument("model", required=False)
@click.option("--rerank", "rerank_model", default=None, help="Cross-encoder to serve too.")
@click.option("--quant", default=None, help="Type of catalogue models (default: auto).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 = any free port (printed at start).",
)
@click.option(
    "--api-key",
    default=None,
    envvar="LLAMAEMBED_API_KEY",
    help="Require 'Authorization: Bearer KEY' (env LLAMAEMBED_API_KEY).",
)
@click.option(
    "--api-key-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="File of accepted keys, one a line.",
)
@click.option(
    "--max-batch-tokens",
    default=4096,
    show_default=True,
    type=click.IntRange(1),
    help="Tokens per model run, shared by concurrent requests.",
)
@click.option(
    "--max-client-batch",
    default=2048,
    show_default=True,
    type=click.IntRange(1),
    help="Inputs one request may send.",
)
@click.option(
    "--max-request-tokens",
    default=300_000,
    show_default=True,
    type=click.IntRange(1),
    help="Tokens one request may hold (413 above), counted as it is tokenised.",
)
@click.option(
    "--max-queue-tokens",
    default=None,
    type=click.IntRange(1),
    help="Tokens waiting before requests get 429 [default: 2 x --max-request-tokens].",
)
@click.option(
    "--batch-wait-ms",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 1000),
    help="Longest wait for a run to fill up to the last run's size (0 = none).",
)
@click.option(
    "--max-body-mb",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body, once decoded (413 above).",
)
@click.option(
    "--max-header-kb",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request line and headers (431 above).",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a client has to send a request's headers (408, closed).",
)
@click.option(
    "--body-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a client has to send a request's body after its headers (408, closed).",
)
@click.option(
    "--keep-alive-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds an idle connection stays open between requests.",
)
@click.option(
    "--max-connections",
    default=1024,
    show_default=True,
    type=click.IntRange(1),
    help="Connections open at once (a request on one past them gets 503).",
)
@click.option(
    "--graceful-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after SIGTERM for requests in flight; those still running get 503.",
)
@click.option(
    "--threads",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="llama.cpp threads per model (0 = the CPU count, at most 8).",
)
@click.option(
    "--n-ctx",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Tokens per input (0 = the model's own; lower it to bound memory).",
)
@click.option("--query-prefix", default=None, help="Prefix of input_type=query texts.")
@click.option("--document-prefix", default=None, help="Prefix of input_type=document texts.")
@click.option(
    "--append-eos",
    default=None,
    help="End every text with this token for last-token pooling ('eos': the vocabulary's), "
    "where the GGUF adds none (Qwen3-Embedding, gte-Qwen2: <|endoftext|>).",
)
@click.option("--access-log", is_flag=True, help="Log every request.")
@gpu_layers_option
@errors
def serve(
    model: str | None,
    rerank_model: str | None,
    quant: str | None,
    host: str,
    port: int,
    api_key: str | None,
    api_key_file: str | None,
    max_batch_tokens: int,
    max_client_batch: int,
    max_request_tokens: int,
    max_queue_tokens: int | None,
    batch_wait_ms: float,
    max_body_mb: int,
    max_header_kb: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive_timeout: float,
    max_connections: int,
    graceful_timeout: float,
    threads: int,
    n_ctx: int,
    query_prefix: str | None,
    document_prefix: str | None,
    append_eos: str | None,
    access_log: bool,
    n_gpu_layers: int,
) -> None:
    """Serve MODEL over HTTP: OpenAI /v1/embeddings, Cohere-style /v1/rerank, /metrics."""
    try:
        from ..hub.spec import resolve_model
        from ..serve.runner import serve as run
        from ..serve.state import HttpLimits, ServerConfig
    except ImportError as exc:
        raise click.ClickException(
            f"the server needs the [server] extra ({exc.name} is missing): "
            "pip install 'llamaembed[server]'"
        ) from exc
    if api_key and api_key_file:
        raise click.UsageError("give --api-key or --api-key-file, not both")
    keys = [api_key] if api_key else []
    if api_key_file:
        lines = Path(api_key_file).read_text(encoding="utf-8").splitlines()
        keys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not keys:
            raise click.ClickException(f"{api_key_file} holds no key")
    options: dict[str, Any] = {"n_gpu_layers": n_gpu_layers, "n_threads": threads, "n_ctx": n_ctx}
    prefixes: dict[str, Any] = {"query_prefix": query_prefix, "document_prefix": document_prefix}
    prefixes["append_eos"] = True if append_eos == "eos" else append_eos
    embedding = resolve_model(
        model, quant=quant, **options, **{k: v for k, v in prefixes.items() if v is not None}
    )
    reranker = resolve_model(rerank_model, quant=quant, **options) if rerank_model else None
    http = HttpLimits(
        max_header_bytes=max_header_kb * 1024,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive=keep_alive_timeout,
        max_connections=max_connections,
    )
    try:
        config = ServerConfig(
            embedding=embedding,
            rerank=reranker,
            api_keys=tuple(keys),
            max_batch_tokens=max_batch_tokens,
            max_client_batch=max_client_batch,
            max_request_tokens=max_request_tokens,
            max_queue_tokens=max_queue_tokens,
            max_body_bytes=max_body_mb * 2**20,
            batch_wait=batch_wait_ms / 1000,
            graceful_timeout=graceful_timeout,
            http=http,
        )
    except ValueError as exc:
        message = str(exc).replace("max_queue_tokens", "--max-queue-tokens")
        raise click.UsageError(
            message.replace("max_request_tokens", "--max-request-tokens")
        ) from exc
    try:
        run(
            config,
            host=host,
            port=port,
            access_log=access_log,
            announce=lambda line: click.echo(line, err=True),
        )
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
