"""Open WebUI's sign-in rate limit (HTTP 429 after 15 sign-ins per account in 3 minutes),
against a stub: reaching the real limit takes 15 sign-ins and up to a minute of waiting,
too slow for this tier. The stub answers 429 a given number of times, then signs in."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from r1deploy.cli import main
from r1deploy.webui import client as webui_client
from r1deploy.webui.client import WebUIClient, WebUIError, post_signin


class RateLimitedWebUIStub(ThreadingHTTPServer):
    def __init__(self, refusals: int):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.refusals = refusals
        self.signins = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RateLimitedWebUIStub

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"status": True})  # /health

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.signins += 1
        if self.server.signins <= self.server.refusals:
            self._send(429, {"detail": "API rate limit exceeded"})
        else:
            self._send(200, {"token": "stub-token", "role": "admin"})


@pytest.fixture
def stub(request):
    server = RateLimitedWebUIStub(refusals=request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("stub", [2], indirect=True)
def test_sign_in_waits_while_the_stub_rate_limits_then_signs_in(stub, capsys):
    response = post_signin(
        requests.Session(), stub.url, "admin@x", "pw", timeout_s=5, wait_s=5, retry_every_s=0.05
    )
    assert response.status_code == 200 and stub.signins == 3
    err = capsys.readouterr().err
    assert err.count("Open WebUI rate-limits sign-ins (15 sign-ins per account in 3 minutes)") == 1


@pytest.mark.parametrize("stub", [1000], indirect=True)
def test_a_limit_that_outlasts_the_wait_is_an_error_that_says_to_wait(stub, monkeypatch):
    monkeypatch.setattr(webui_client, "SIGNIN_RATE_LIMIT_WAIT_S", 0.0)
    with pytest.raises(WebUIError, match=r"still rate-limited \(HTTP 429\).*wait a few minutes"):
        WebUIClient(stub.url).sign_in("admin@x", "pw")
    assert stub.signins == 1


@pytest.mark.parametrize("stub", [1000], indirect=True)
def test_smoke_signin_check_fails_naming_the_rate_limit(stub, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(webui_client, "SIGNIN_RATE_LIMIT_WAIT_S", 0.0)
    password = tmp_path / "password"
    password.write_text("pw\n")
    code = main(
        [
            "smoke",
            "--webui",
            stub.url,
            "--admin-email",
            "admin@x",
            "--admin-password-file",
            str(password),
            "--only",
            "webui.signin",
            "--json",
        ]
    )
    report = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert report["webui.signin"]["status"] == "fail"
    assert "still refuses sign-ins" in report["webui.signin"]["message"]
    assert "15 sign-ins per account in 3 minutes" in report["webui.signin"]["message"]
