"""A hostile but fair client against `llamaembed serve`: the probes of issue 28, measured.

Each probe starts a fresh server (all-MiniLM-L6-v2 F16, `--threads 1`, `--api-key`) on
127.0.0.1, attacks it, and records what it cost the server: how long `/health` stalled
meanwhile, how much its peak RSS grew (VmHWM, reset before each probe), and what the
attacker got back. `--baseline DIR` runs the same probes against another checkout (a
`git worktree` of an older commit) in the same run, for a before/after table.

    python benchmarks/hostile.py [--baseline DIR] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.prepare import gguf_paths
from benchmarks.run import machine_header, write_results

KEY = "probe-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
WORDS = "the cat dog sat on mat red blue green house car tree water fire light music".split()  # noqa: SIM905


class Server:
    """`llamaembed serve` as a process, from this checkout or from ``checkout``."""

    def __init__(self, model: Path, checkout: Path | None, *extra: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        env = dict(os.environ)
        root = Path(__file__).resolve().parent.parent if checkout is None else checkout.resolve()
        env["PYTHONPATH"] = str(root)  # and run there: `python -m` puts the cwd first
        command = [sys.executable, "-m", "llamaembed", "serve", str(model), "--threads", "1"]
        command += ["--api-key", KEY, "--port", str(self.port), *extra]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not come up")
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.rss_before = self.memory()["VmRSS"]

    def memory(self) -> dict[str, int]:
        """Return VmRSS and VmHWM in kB."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
        return fields

    def peak_growth_mb(self) -> float:
        """Return how far the peak RSS rose over the RSS before the probe, in MB."""
        return (self.memory()["VmHWM"] - self.rss_before) / 1000

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def health_stalls(server: Server, attack: Callable[[], None]) -> float:
    """Run ``attack`` while timing `/health` every 50 ms; return the longest answer, in s."""
    done = threading.Event()
    worst = 0.0

    def poll() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.monotonic()
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{server.url}/health", timeout=60)
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        attack()
    finally:
        done.set()
        poller.join()
    return worst


def probe_headers(server: Server) -> dict[str, object]:
    """Eight clients at once send a 64 MiB Authorization header."""
    sent = [0] * 8

    def one(i: int) -> None:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(30)
            try:
                sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
                block = b"A" * 2**16
                for _ in range(1024):
                    sock.sendall(block)
                    sent[i] += len(block)
                sock.sendall(b"\r\nContent-Length: 2\r\n\r\n{}")
                sock.recv(100)
            except OSError:
                pass

    def attack() -> None:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    stall = health_stalls(server, attack)
    return {
        "/health worst (s)": stall,
        "peak RSS growth (MB)": server.peak_growth_mb(),
        "MiB sent before the cut": max(sent) / 2**20,
    }


def probe_unfinished(server: Server, wait: float = 75.0) -> dict[str, object]:
    """A request whose headers never end, and one whose body never ends."""
    result: dict[str, object] = {}
    body_head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        "Content-Length: 100\r\n\r\n{"
    )
    for name, data in (
        ("headers", "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"),
        ("body", body_head),
    ):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(data.encode())
            sock.settimeout(wait)
            started = time.monotonic()
            try:
                while sock.recv(65536):
                    pass
                result[f"unfinished {name}: closed after (s)"] = time.monotonic() - started
            except TimeoutError:
                result[f"unfinished {name}: closed after (s)"] = f"open after {wait:g}"
    return result


def probe_token_ids(server: Server) -> dict[str, object]:
    """One 60 MB body of 2,048 lists of 5,900 token ids."""
    body = json.dumps({"input": [list(range(1000, 6900))] * 2048}, separators=(",", ":")).encode()
    status: list[object] = []

    def attack() -> None:
        try:  # a server that takes the body runs ~1M tokens: minutes, not waited for
            response = httpx.post(
                f"{server.url}/v1/embeddings",
                content=body,
                headers={**AUTH, "content-type": "application/json"},
                timeout=30,
            )
            status.append(response.status_code)
        except httpx.TimeoutException:
            status.append("taken: no answer within 30 s")

    stall = health_stalls(server, attack)
    return {
        "60 MB token ids: status": status[0],
        "/health worst (s)": stall,
        "peak RSS growth (MB)": server.peak_growth_mb(),
        "RSS growth after (MB)": (server.memory()["VmRSS"] - server.rss_before) / 1000,
    }


def short_texts(n: int, seed: int) -> list[str]:
    """Return n texts of about 60 tokens (the issue's queue and shutdown load)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=60).tolist()) for _ in range(n)]


def probe_queue(server: Server) -> dict[str, object]:
    """Requests of 2,048 texts until one is refused: how fast, and the Retry-After."""
    url = f"{server.url}/v1/embeddings"
    sent: list[threading.Thread] = []
    refusal: dict[str, object] = {}

    def send(seed: int) -> None:
        started = time.monotonic()
        try:
            response = httpx.post(
                url, json={"input": short_texts(2048, seed)}, headers=AUTH, timeout=600
            )
        except httpx.TransportError:
            return
        if response.status_code == 429 and not refusal:
            refusal["429 after (s)"] = time.monotonic() - started
            refusal["Retry-After (s)"] = response.headers.get("retry-after")
            refusal["admitted before the 429"] = len(sent) - 1

    for seed in range(40):
        thread = threading.Thread(target=send, args=(seed,), daemon=True)
        thread.start()
        sent.append(thread)
        thread.join(timeout=2.0)  # a refusal comes back at once; admitted ones stay
        if refusal:
            break
    return refusal or {"429 after (s)": "none in 40 requests"}


def probe_shutdown(server: Server) -> dict[str, object]:
    """SIGTERM 2 s after 4 requests of 2,048 texts, more work than the grace period."""
    url = f"{server.url}/v1/embeddings"
    answers: list[httpx.Response] = []

    def send(seed: int) -> None:
        with contextlib.suppress(httpx.TransportError):
            answers.append(
                httpx.post(url, json={"input": short_texts(2048, seed)}, headers=AUTH, timeout=600)
            )

    threads = [threading.Thread(target=send, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join()
    server.process.wait(120)
    json_type = "application/json"
    shapes = sorted(
        f"{a.status_code} {'json' if a.headers.get('content-type', '') == json_type else 'text'}"
        for a in answers
    )
    return {"SIGTERM answers": ", ".join(shapes), "exit after (s)": time.monotonic() - started}


# Each probe, with the options its server runs with (beyond --threads 1 and --api-key).
def chunked_post(server: Server, path: str, field: str, megabytes: int) -> tuple[object, float]:
    """Send one chunked body of ``megabytes`` MiB to ``path``; return its status and seconds.

    The body is a JSON object whose ``field`` is one long string; the sender stops once
    the server answers.
    """
    block = b"a" * 65536
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        opening = f'{{"{field}": "'.encode()
        sock.sendall(head.encode() + b"%x\r\n%s\r\n" % (len(opening), opening))
        try:
            for _ in range(megabytes * 16):
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            else:
                sock.sendall(b'2\r\n"}\r\n0\r\n\r\n')
        except OSError:
            pass  # answered and closed while we sent
        sock.settimeout(600)
        raw = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in raw and (data := sock.recv(65536)):
                raw += data
    status: object = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else "closed"
    return status, time.monotonic() - started


def probe_chunked(server: Server) -> dict[str, object]:
    """A 64 MiB chunked body (no Content-Length) to every POST route of the route table."""
    from llamaembed.serve.routes import ROUTES  # this checkout's table, for both sides

    found: dict[str, object] = {}
    for route in ROUTES:
        if not route.takes_body:
            continue
        fields = route.request.model_fields if route.request is not None else {}
        field = next((f for f in ("inputs", "input", "prompt", "query") if f in fields), "input")
        for path in route.paths:
            Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")
            before = server.memory()["VmRSS"]
            status, _ = chunked_post(server, path, field, 64)
            growth = (server.memory()["VmHWM"] - before) / 1000
            found[f"{path}: status, peak RSS growth (MB)"] = f"{status}, {growth:.0f}"
    return found


PROBES: dict[str, tuple[Callable[[Server], dict[str, object]], tuple[str, ...]]] = {
    "headers": (probe_headers, ()),
    "unfinished": (probe_unfinished, ()),
    "token ids": (probe_token_ids, ("--max-body-mb", "64")),  # the old default, for both
    "queue": (probe_queue, ()),
    "shutdown": (probe_shutdown, ()),
    "chunked": (probe_chunked, ("--max-body-mb", "16")),
}


def show(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to probe alike")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--probes", nargs="+", choices=list(PROBES), default=list(PROBES))
    parser.add_argument(
        "--model", type=Path, help="serve this GGUF (e.g. a bge-m3 one) instead of MiniLM F16"
    )
    args = parser.parse_args()
    model = args.model or gguf_paths()["f16"]
    sides = {"this checkout": None}
    if args.baseline is not None:
        sides["baseline"] = args.baseline
    rows: dict[str, dict[str, str]] = {}
    for probe in args.probes:
        run, options = PROBES[probe]
        for side, checkout in sides.items():
            server = Server(model, checkout, *options)
            try:
                for name, value in run(server).items():
                    rows.setdefault(f"{probe}: {name}", {})[side] = show(value)
            finally:
                server.stop()
            print(probe, side, {k: v.get(side) for k, v in rows.items() if k.startswith(probe)})
    header = "| probe | " + " | ".join(sides) + " |"
    lines = [header, "|---" * (len(sides) + 1) + "|"]
    lines += [
        f"| {name} | " + " | ".join(row.get(s, "") for s in sides) + " |"
        for name, row in rows.items()
    ]
    report = "\n".join([*machine_header(1), "", *lines])
    print(report)
    if args.write:
        command = "python benchmarks/hostile.py" + (" --baseline DIR" if args.baseline else "")
        write_results(report, command, "hostile", heading="## Server under hostile load")


if __name__ == "__main__":
    main()
