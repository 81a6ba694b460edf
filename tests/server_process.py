"""Start ``llamaembed serve`` as a real process on 127.0.0.1 (a free port) for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


class ServerProcess:
    """A running server: ``url``, ``output`` (its log so far), ``stop()``."""

    def __init__(self, *args: str | Path, api_key: str | None = None, timeout: float = 120):
        command = [sys.executable, "-m", "llamaembed", "serve", *map(str, args), "--port", "0"]
        if api_key:
            command += ["--api-key", api_key]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._announced = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        if not self._announced.wait(timeout):
            self.stop(signal.SIGKILL)
            raise AssertionError(f"the server did not start:\n{self.output}")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited {self.process.returncode}:\n{self.output}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"the server never became healthy:\n{self.output}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "serving on http://" in line and not self._announced.is_set():
                self.url = line.split("serving on ")[1].split()[0]
                self._announced.set()

    @property
    def output(self) -> str:
        """Return everything the server printed so far."""
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send a signal and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server did not exit after {sig}:\n{self.output}") from None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
