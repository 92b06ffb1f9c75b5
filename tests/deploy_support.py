"""Real servers for the deployment tests: `chroma run` from the chromadb package, and Sibyl processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s ({last}):\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class ChromaServer:
    """`chroma run` on a free loopback port over a temp path; restartable on the same port and path."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path, self.log = path, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        exe = Path(sys.executable).parent / "chroma"
        self.exe = str(exe) if exe.exists() else shutil.which("chroma")
        if not self.exe:
            raise RuntimeError("the `chroma` command (from the chromadb package) is not installed")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> float:
        started = time.monotonic()
        env = os.environ | {"ANONYMIZED_TELEMETRY": "False"}
        self.proc = subprocess.Popen(
            [self.exe, "run", "--path", str(self.path), "--port", str(self.port), "--host", "127.0.0.1"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        wait_http(f"{self.url}/api/v2/heartbeat", timeout, self.proc, self.log)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def restart(self) -> float:
        self.stop()
        return self.start()


def sibyl_env(**values: str) -> dict:
    """A clean environment for a Sibyl subprocess: nothing inherited from the developer's SIBYL_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIBYL_", "TELEGRAM_"))}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
            "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env |= values
    return env
