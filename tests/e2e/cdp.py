"""Drive Debian's headless chromium over the Chrome DevTools Protocol (websocket-client):
navigate, run JavaScript, wait for text, take screenshots."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import websocket

# --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
# --disable-dev-shm-usage: small /dev/shm in containers.
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--window-size=1280,800", "--remote-allow-origins=*", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    def __init__(self, binary: str = "chromium"):
        self.binary = shutil.which(binary)
        if not self.binary:
            raise FileNotFoundError("chromium not found: tests/e2e/browser.sh installs it")
        self.profile = tempfile.TemporaryDirectory(
            prefix="r1deploy-chromium-", ignore_cleanup_errors=True)
        port = _free_port()
        self.process = subprocess.Popen(
            [self.binary, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}",
             f"--user-data-dir={self.profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                pages = requests.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                page = next(p for p in pages if p.get("type") == "page")
                break
            except (requests.RequestException, StopIteration, ValueError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError("chromium did not open its DevTools port") from None
                time.sleep(0.5)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60) -> object:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
            except RuntimeError:
                pass  # the page is changing under us
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout_s:.0f}s: {expression}")
            time.sleep(0.5)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        # Chromium's helpers (zygote, renderers, crashpad) outlive the main process and keep
        # writing into the profile, so the whole process group goes before the profile does.
        with contextlib.suppress(Exception):  # closing is best effort
            self.send("Browser.close")
        with contextlib.suppress(Exception):
            self.ws.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        _kill_group(self.process.pid)
        self.profile.cleanup()


def _kill_group(pgid: int, term_s: float = 10, kill_s: float = 10) -> None:
    """SIGTERM, then SIGKILL, what is left in the group; return once it is empty (or, should
    unreaped zombies keep it alive, after kill_s more seconds)."""
    start = time.monotonic()
    while time.monotonic() - start < term_s + kill_s:
        sig = signal.SIGTERM if time.monotonic() - start < term_s else signal.SIGKILL
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.2)
