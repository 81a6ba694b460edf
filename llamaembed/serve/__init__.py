"""The HTTP server (``llamaembed serve``): OpenAI embeddings and Cohere-style rerank.

``app`` holds the routes, ``batcher`` the queue that packs concurrent requests into shared
model runs (no HTTP in it), ``schemas`` the request and response shapes, ``metrics`` the
Prometheus metrics and ``runner`` the process around them (socket, uvicorn, signals).
It imports the engine and the hub; nothing outside it imports it, except the CLI. It
needs the ``[server]`` extra (FastAPI, uvicorn, prometheus-client).
"""
