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
from benchmarks.run import cpu_class, machine_header, write_results

HERE = Path(__file__).resolve().parent
THREADS = os.cpu_count() or 2
CONCURRENCY = (1, 16, 64)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on 127.0.0.1 that answers /v1/embeddings."""

    def __init__(
        self,
        command: list[str],
        port: int,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = port
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
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

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: (the main thread, where the event loop runs; all others).

        The process's total counts threads that have ended too (a thread pool's)."""
        process = psutil.Process(self.process.pid)
        times = process.cpu_times()
        main = next(
            (t.user_time + t.system_time for t in process.threads() if t.id == process.pid), 0.0
        )
        return main, times.user + times.system - main

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


def measured(server: Server, bodies: list[bytes], clients: int) -> dict:
    """Run `load` and add the CPU it cost a request, in ms: the server's event-loop thread,
    its other threads (inference: the engine's threads, the peer's thread pool) and the
    client (this process; nothing else runs in it meanwhile)."""
    main, other = server.cpu()
    mine = sum(os.times()[:2])
    result = asyncio.run(load(server.port, bodies, clients))
    main_after, other_after = server.cpu()
    n = len(bodies) / 1000
    result["cpu_loop"] = (main_after - main) / n
    result["cpu_inference"] = (other_after - other) / n
    result["cpu_client"] = (sum(os.times()[:2]) - mine) / n
    return result


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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--requests", type=int, default=1000, help="ours, per level a round")
    parser.add_argument("--peer-requests", type=int, default=300)
    parser.add_argument("--peer-n-ctx", type=int, default=0, help="0: its default (2048)")
    parser.add_argument("--soak", type=int, default=20_000, help="requests for the RSS check")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also serve from this checkout (e.g. a git worktree of an earlier commit) and "
        "print this checkout's rates × its rates, per round (A/B of a server change)",
    )
    args = parser.parse_args()

    from llamaembed import Llama
    from llamaembed.engine.system import auto_weight_type

    kind = auto_weight_type().type
    model = gguf_paths()[kind]
    texts = text_sets()["short"]
    bodies = [json.dumps({"input": t}).encode() for t in texts]

    def cycle(n: int) -> list[bytes]:
        return [bodies[i % len(bodies)] for i in range(n)]

    ours_port, peer_port = free_port(), free_port()
    # Its defaults, but the same threads as ours (its default is half the cores).
    peer_options = ["--n_ctx", str(args.peer_n_ctx)] if args.peer_n_ctx else []
    ours = Server(
        [sys.executable, "-m", "llamaembed", "serve", str(model), "--port", str(ours_port),
         "--threads", str(THREADS)],
        ours_port,
    )
    peer = Server(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--embedding",
         "true", "--port", str(peer_port), "--n_threads", str(THREADS), "--n_threads_batch",
         str(THREADS), "--verbose", "false", *peer_options],
        peer_port,
    )
    baseline = None
    if args.baseline is not None:
        base_port = free_port()
        baseline = Server(
            [sys.executable, "-m", "llamaembed", "serve", str(model), "--port", str(base_port),
             "--threads", str(THREADS)],
            base_port,
            env={**os.environ, "PYTHONPATH": str(args.baseline.resolve())},
            # `python -m` puts the working folder first on sys.path: run in the checkout,
            # or this one's llamaembed is what serves.
            cwd=args.baseline.resolve(),
        )
    llama = Llama(model, n_threads=THREADS)
    # This machine's speed drifts by a third within minutes, so every round measures the
    # engine alone, our server and the peer back to back; ratios are per round, then
    # the median over rounds.
    rounds: list[dict] = []
    try:
        llama.embed_texts(texts[:64])
        for clients in CONCURRENCY:  # warm-up
            asyncio.run(load(ours_port, cycle(100), clients))
            asyncio.run(load(peer_port, cycle(30), clients))
        for _ in range(args.rounds):
            started = time.perf_counter()
            expected = llama.embed_texts(texts)
            record: dict = {"in_process": len(texts) / (time.perf_counter() - started)}
            singles = []
            for text in texts[:200]:
                started = time.perf_counter()
                llama.embed(text)
                singles.append((time.perf_counter() - started) * 1000)
            record["single_ms"] = statistics.fmean(singles)
            for clients in CONCURRENCY:
                n = args.requests // 2 if clients == 1 else args.requests
                if baseline is not None and len(rounds) % 2:  # alternate who goes first
                    record[("baseline", clients)] = measured(baseline, cycle(n), clients)
                record[("llamaembed serve", clients)] = measured(ours, cycle(n), clients)
                if baseline is not None and not len(rounds) % 2:
                    record[("baseline", clients)] = measured(baseline, cycle(n), clients)
                record[("llama_cpp.server", clients)] = measured(
                    peer, cycle(args.peer_requests), clients
                )
            rounds.append(record)
        rss_before = ours.rss_mb()
        soak = asyncio.run(load(ours_port, cycle(args.soak), 16))
        rss_after = ours.rss_mb()
    finally:
        llama.close()
        ours.stop()
        peer.stop()
        if baseline is not None:
            baseline.stop()

    def median(values: list[float]) -> float:
        return statistics.median(values)

    in_process = [r["in_process"] for r in rounds]
    single_ms = median([r["single_ms"] for r in rounds])
    lines = [*machine_header(THREADS), ""]
    lines.append(
        f"Model: all-MiniLM-L6-v2 {kind.upper()} (auto's type here). Texts: the 1,000 short "
        f"texts (10–20 tokens), one per request, over kept-alive connections. "
        f"{args.rounds} interleaved rounds; in-process `embed_texts` ran "
        f"{min(in_process):.0f}–{max(in_process):.0f} texts/s across them; ratios are "
        "per round, then the median."
    )
    lines.append("")
    lines.append(
        "| server | clients | requests/s | × in-process embed_texts | × llama_cpp.server "
        "| p50 ms | p99 ms | min cos | failures |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name in ("llamaembed serve", "llama_cpp.server"):
        for clients in CONCURRENCY:
            runs = [r[(name, clients)] for r in rounds]
            peer_runs = [r[("llama_cpp.server", clients)] for r in rounds]
            rate = median([x["rate"] for x in runs])
            pairs = zip(runs, rounds, strict=True)
            vs_engine = median([x["rate"] / r["in_process"] for x, r in pairs])
            vs_peer = median([x["rate"] / y["rate"] for x, y in zip(runs, peer_runs, strict=True)])
            replies = {k: v for x in runs for k, v in x["replies"].items()}
            lines.append(
                f"| {name} | {clients} | {rate:.0f} | {vs_engine:.2f} | {vs_peer:.2f} | "
                f"{median([x['p50'] for x in runs]):.1f} | "
                f"{median([x['p99'] for x in runs]):.1f} | "
                f"{check(replies, texts, expected):.5f} | {sum(x['failures'] for x in runs)} |"
            )
    lines.append("")
    lines.append(
        f"CPU a request costs, in ms (medians over rounds; {THREADS} cores give "
        f"{THREADS * 1000:,} ms of CPU a second at most):"
    )
    lines.append("")
    lines.append(
        "| server | clients | event loop | inference threads | client | all | "
        "inference × llamaembed's |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name in ("llamaembed serve", "llama_cpp.server"):
        for clients in CONCURRENCY[1:]:
            runs = [r[(name, clients)] for r in rounds]
            ours_runs = [r[("llamaembed serve", clients)] for r in rounds]
            loop_ms = median([x["cpu_loop"] for x in runs])
            inference_ms = median([x["cpu_inference"] for x in runs])
            client_ms = median([x["cpu_client"] for x in runs])
            total_ms = median([x["cpu_loop"] + x["cpu_inference"] + x["cpu_client"] for x in runs])
            pairs = zip(runs, ours_runs, strict=True)
            relative = median([x["cpu_inference"] / y["cpu_inference"] for x, y in pairs])
            lines.append(
                f"| {name} | {clients} | {loop_ms:.2f} | {inference_ms:.2f} | {client_ms:.2f} | "
                f"{total_ms:.2f} | {relative:.2f} |"
            )
    one = [r[("llamaembed serve", 1)] for r in rounds]
    one_ms = median([x["mean"] for x in one])
    lines.append("")
    lines.append(
        f"One client: {median([x['rate'] for x in one]):.0f} requests/s, mean {one_ms:.2f} ms "
        f"a request against {single_ms:.2f} ms for in-process `embed` of one text: "
        f"{one_ms - single_ms:.2f} ms of HTTP, JSON and queueing per request."
    )
    lines.append(
        f"Server RSS: {rss_before:.0f} MB before and {rss_after:.0f} MB after {args.soak:,} "
        f"more requests at 16 clients ({rss_after - rss_before:+.0f} MB, "
        f"{soak['failures']} failures)."
    )
    report = "\n".join(lines)
    for clients in CONCURRENCY[1:]:  # the spread behind the medians, on the terminal only
        ratios = [
            r[("llamaembed serve", clients)]["rate"] / r[("llama_cpp.server", clients)]["rate"]
            for r in rounds
        ]
        print(f"× llama_cpp.server by round, {clients} clients:", [round(x, 2) for x in ratios])
    if baseline is not None:  # an A/B of two checkouts: the terminal only
        for clients in CONCURRENCY:
            pairs = [(r[("llamaembed serve", clients)], r[("baseline", clients)]) for r in rounds]
            ratios = [x["rate"] / y["rate"] for x, y in pairs]
            loops = [(x["cpu_loop"], y["cpu_loop"]) for x, y in pairs]
            print(
                f"× baseline, {clients} clients: median {median(ratios):.3f}, by round",
                [round(x, 3) for x in ratios],
                "; event-loop ms a request (this, baseline):",
                [(round(a, 3), round(b, 3)) for a, b in loops],
            )
    print(report)
    if args.write:
        write_results(
            report,
            "python benchmarks/server.py " + " ".join(sys.argv[1:]),
            f"server-{cpu_class()}",
            heading=f"### CPU class `{cpu_class()}` (server)",
        )

if __name__ == "__main__":
    main()
