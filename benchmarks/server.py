"""Server throughput, latency and memory: `llamaembed serve` against llama_cpp.server.

One run, one machine, one model (all-MiniLM-L6-v2 in the type `auto` picks here), the
same 1,000 short texts. Clients and servers share the machine; each client sends one
text per request over a kept-alive HTTP/1.1 connection (a lean asyncio client, so the
client costs both servers the same little CPU). Prints ratios:

- throughput at 1, 16 and 64 concurrent clients against in-process ``embed_texts`` on
  the same texts (the engine's ceiling) and against llama_cpp.server;
- one client: the overhead per request over in-process ``embed``;
- p50 / p99 latency;
- the server's RSS before and after 20,000 requests.

    python benchmarks/server.py [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.prepare import gguf_paths, text_sets
from benchmarks.run import cpu_class, machine_header

HERE = Path(__file__).resolve().parent
THREADS = os.cpu_count() or 2
CONCURRENCY = (1, 16, 64)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on 127.0.0.1 that answers /v1/embeddings."""

    def __init__(self, command: list[str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        body = json.dumps({"input": "warm up"}).encode()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, _ = asyncio.run(one_request(port, body))
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{command[:4]} did not come up")

    def rss_mb(self) -> float:
        process = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [process, *process.children(True)]) / 2**20

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def request_bytes(port: int, body: bytes) -> bytes:
    return (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if match:
        return status, await reader.readexactly(int(match.group(1)))
    body = b""  # chunked
    while True:
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def one_request(port: int, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(port, body))
        return await read_response(reader)
    finally:
        writer.close()


async def load(port: int, bodies: list[bytes], clients: int) -> dict:
    """Send every body once, `clients` at a time, one connection per client."""
    latencies: list[float] = []
    replies: dict[int, bytes] = {}
    failures = 0
    queue = list(enumerate(bodies))[::-1]

    async def client() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                i, body = queue.pop()
                started = time.perf_counter()
                writer.write(request_bytes(port, body))
                status, reply = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures += 1
                elif i % 50 == 0:
                    replies[i] = reply
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    return {
        "rate": len(bodies) / seconds,
        "p50": ms[len(ms) // 2],
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "mean": statistics.fmean(ms),
        "failures": failures,
        "replies": replies,
    }


def check(replies: dict[int, bytes], texts: list[str], expected: np.ndarray) -> float:
    """Return the lowest cosine of sampled replies to the in-process vectors."""
    assert replies, "no successful reply to check"
    worst = 1.0
    for i, reply in replies.items():
        vector = np.asarray(json.loads(reply)["data"][0]["embedding"], dtype=np.float32)
        reference = expected[i % len(texts)]
        cos = float(vector @ reference / (np.linalg.norm(vector) * np.linalg.norm(reference)))
        worst = min(worst, cos)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per concurrency level")
    parser.add_argument("--peer-requests", type=int, default=800)
    parser.add_argument("--peer-n-ctx", type=int, default=0, help="0: its default (2048)")
    parser.add_argument("--soak", type=int, default=20_000, help="requests for the RSS check")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    args = parser.parse_args()

    from llamaembed import Llama
    from llamaembed.engine.hardware import choose_weight_type, cpu_flags

    kind = choose_weight_type(cpu_flags()).type
    model = gguf_paths()[kind]
    texts = text_sets()["short"]
    bodies = [json.dumps({"input": t}).encode() for t in texts]

    # In-process ceiling: the engine with no HTTP around it.
    with Llama(model, n_threads=THREADS) as llama:
        llama.embed_texts(texts[:64])
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            expected = llama.embed_texts(texts)
            rates.append(len(texts) / (time.perf_counter() - started))
        in_process_rate = statistics.median(rates)
        singles = []
        for text in texts[:300]:
            started = time.perf_counter()
            llama.embed(text)
            singles.append((time.perf_counter() - started) * 1000)
        single_ms = statistics.fmean(singles)

    def cycle(n: int) -> list[bytes]:
        return [bodies[i % len(bodies)] for i in range(n)]

    results: dict[str, dict[int, dict]] = {}
    rss: dict[str, float] = {}
    port = free_port()
    ours = Server(
        [sys.executable, "-m", "llamaembed", "serve", str(model), "--port", str(port),
         "--threads", str(THREADS)],
        port,
    )
    try:
        results["llamaembed serve"] = {}
        for clients in CONCURRENCY:
            asyncio.run(load(port, cycle(200), clients))  # warm-up at this concurrency
            results["llamaembed serve"][clients] = asyncio.run(
                load(port, cycle(args.requests), clients)
            )
        rss["before"] = ours.rss_mb()
        soak = asyncio.run(load(port, cycle(args.soak), 16))
        rss["after"] = ours.rss_mb()
        rss["soak_failures"] = soak["failures"]
    finally:
        ours.stop()

    # Its defaults, but the same threads as ours (its default is half the cores).
    peer_options = ["--n_ctx", str(args.peer_n_ctx)] if args.peer_n_ctx else []
    port = free_port()
    peer = Server(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--embedding",
         "true", "--port", str(port), "--n_threads", str(THREADS), "--n_threads_batch",
         str(THREADS), "--verbose", "false", *peer_options],
        port,
    )
    try:
        results["llama_cpp.server"] = {}
        for clients in CONCURRENCY:
            asyncio.run(load(port, cycle(50), clients))
            results["llama_cpp.server"][clients] = asyncio.run(
                load(port, cycle(args.peer_requests), clients)
            )
    finally:
        peer.stop()

    lines = [*machine_header(THREADS), ""]
    lines.append(
        f"Model: all-MiniLM-L6-v2 {kind.upper()} (auto's type here). Texts: the 1,000 short "
        f"texts (10–20 tokens), one per request. In-process `embed_texts`: "
        f"{in_process_rate:.0f} texts/s; in-process `embed` of one text: {single_ms:.2f} ms."
    )
    lines.append("")
    lines.append(
        "| server | clients | requests/s | × in-process embed_texts | × llama_cpp.server "
        "| p50 ms | p99 ms | min cos | failures |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, by_clients in results.items():
        for clients, r in by_clients.items():
            peer_rate = results["llama_cpp.server"][clients]["rate"]
            cos = check(r["replies"], texts, expected)
            lines.append(
                f"| {name} | {clients} | {r['rate']:.0f} | {r['rate'] / in_process_rate:.2f} | "
                f"{r['rate'] / peer_rate:.2f} | {r['p50']:.1f} | {r['p99']:.1f} | "
                f"{cos:.5f} | {r['failures']} |"
            )
    one = results["llamaembed serve"][1]
    lines.append("")
    lines.append(
        f"One client: {one['rate']:.0f} requests/s, mean {one['mean']:.2f} ms a request "
        f"against {single_ms:.2f} ms for in-process `embed`: "
        f"{one['mean'] - single_ms:.2f} ms of HTTP, JSON and queueing per request."
    )
    lines.append(
        f"Server RSS: {rss['before']:.0f} MB before and {rss['after']:.0f} MB after "
        f"{args.soak:,} more requests at 16 clients ({rss['after'] - rss['before']:+.0f} MB, "
        f"{rss['soak_failures']} failures)."
    )
    report = "\n".join(lines)
    print(report)
    if args.write:
        readme = HERE / "README.md"
        text = readme.read_text()
        key = f"server-{cpu_class()}"
        start, end = f"<!-- results-{key}:start -->", f"<!-- results-{key}:end -->"
        block = (
            f"{start}\nMeasured {time.strftime('%Y-%m-%d')} with "
            f"`python benchmarks/server.py --write`.\n\n{report}\n{end}"
        )
        if start in text:
            head, rest = text.split(start)
            _, tail = rest.split(end)
            text = f"{head}{block}{tail}"
        else:
            text += f"\n### Server, CPU class `{cpu_class()}`\n\n{block}\n"
        readme.write_text(text)


if __name__ == "__main__":
    main()
