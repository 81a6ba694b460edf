"""The HTTP server (``llamaembed serve``): OpenAI's, Cohere's, TEI's and Ollama's contracts.

In layers, after text-embeddings-inference's split of router, queue and inference:

- ``routes``: the route table, each route declared once (path, aliases, label, handler,
  inference or not, shapes, error shape), which everything below reads;
- ``openai``, ``tei``, ``ollama``, ``status``: the handlers, by contract, sharing
  ``common`` (the body parsed, the model named, the answer written);
- ``app``: ``create_app``, registering the table with FastAPI (HTTP in, HTTP out);
- ``state``: the configuration, the served models and the server's life cycle;
- ``guard``: API keys and body limits, checked before any parsing; request metrics;
- ``infer``: one request's embed or rerank (prepare, submit, wait), library errors only;
- ``batcher``: the queue that packs concurrent requests into shared model runs;
- ``errors``: ``ApiError`` and the one table from exceptions to answers;
- ``schemas``, ``metrics``: request and response shapes, Prometheus metrics;
- ``runner``: the process around them (socket, uvicorn, signals).

It imports the embedder contract, the engine's pure functions and the hub; nothing
outside it imports it, except the CLI. It needs the ``[server]`` extra (FastAPI, uvicorn,
prometheus-client).
"""
