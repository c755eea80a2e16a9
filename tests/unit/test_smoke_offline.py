"""`r1deploy smoke` where no server is needed: configuration errors, nothing reachable,
reports. The checks themselves run against real servers in tests/e2e."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET

import pytest

from r1deploy.cli import main
from r1deploy.smoke.checks import parse_extrema
from r1deploy.stackdir import read_env_file


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket goes


def test_nothing_reachable_exits_2_and_names_the_url(capsys, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    junit = tmp_path / "smoke.xml"
    code = main(["smoke", "--vllm", url, "--webui", url, "--json", "--junit", str(junit)])
    out = capsys.readouterr()
    assert code == 2
    report = json.loads(out.out)
    health = {c["name"]: c for c in report["checks"]}["vllm.health"]
    assert health["status"] == "fail" and f"cannot connect to {url}/health" in health["message"]
    assert {c["name"]: c["status"] for c in report["checks"]}["vllm.chat"] == "skip"
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("failures")) == 2 and suite.get("tests") == str(len(report["checks"]))


def test_wait_ready_reports_what_never_came_up(capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["smoke", "--vllm", url, "--wait-ready", "1.5", "--only", "vllm.health"]) == 2
    assert "never came up within 2s: vLLM (last: ConnectError)" in capsys.readouterr().out


def test_missing_stack_dir_is_a_usage_error_with_the_fix(capsys, tmp_path):
    assert main(["smoke", "--stack-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/settings.json not found" in err and "make render" in err


def test_no_endpoint_at_all_is_a_usage_error(capsys):
    assert main(["smoke"]) == 2
    assert "--stack-dir" in capsys.readouterr().err


def test_env_file_is_read_as_compose_reads_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# secrets\nVLLM_API_KEY=abc=def\nexport A='x y'\nB=\"q\"\n\nEMPTY=\n")
    assert read_env_file(env) == {"VLLM_API_KEY": "abc=def", "A": "x y", "B": "q", "EMPTY": ""}
    assert read_env_file(tmp_path / "missing.env") == {}


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("so \\boxed{max = 2, min = -2}", (2, -2)),
        ("The maximum is 2 and the minimum is -2.", (2, -2)),
        ("\\boxed{\\text{Maximum: } 2, \\text{ Minimum: } -2}", (2, -2)),
        ("\\boxed{2} and \\boxed{-2}", (2, -2)),
        ("max 18, min -2", (18, -2)),
    ],
)
def test_quality_answer_parsing(answer, expected):
    assert parse_extrema(answer) == expected


def test_agent_round_trip_tells_an_unreachable_upstream_from_a_broken_stack():
    from r1deploy.smoke.checks import UPSTREAM_UNREACHABLE, _upstream_error

    offline = '{"detail": "get_weather: cannot reach wttr.in", "error": "upstream-unreachable"}'
    assert _upstream_error(offline) in UPSTREAM_UNREACHABLE
    assert _upstream_error({"error": "upstream-timeout"}) in UPSTREAM_UNREACHABLE
    assert _upstream_error('{"error": "invalid-arguments", "pointer": "/city"}') not in (
        UPSTREAM_UNREACHABLE
    )
    assert _upstream_error("Paris: sunny, +12°C") is None


class _StandInVllm:
    """A stand-in for vLLM's auth surface: /health, and /v1/models that answers 200 to the
    right key, 401 otherwise, or (``enforces=False``) 200 to anyone."""

    def __init__(self, key: str, enforces: bool):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                allowed = not enforces or self.headers.get("Authorization") == f"Bearer {key}"
                status = 200 if self.path == "/health" or allowed else 401
                body = b'{"data": []}' if self.path == "/v1/models" else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in_vllm(request):
    servers = []

    def start(*, enforces: bool, key: str = "k" * 40) -> _StandInVllm:
        servers.append(_StandInVllm(key, enforces))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _auth_check(capsys, url: str, *extra: str) -> tuple[int, dict]:
    code = main(
        ["smoke", "--vllm", url, "--only", "vllm.health", "--only", "vllm.auth", "--json", *extra]
    )
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}["vllm.auth"]


def test_a_vllm_that_answers_without_a_key_fails_the_smoke_against_stand_in(
    capsys, tmp_path, stand_in_vllm
):
    server = stand_in_vllm(enforces=False)
    key_file = tmp_path / "key"
    key_file.write_text("k" * 40)
    code, auth = _auth_check(capsys, server.url, "--vllm-key-file", str(key_file))
    assert code == 1 and auth["status"] == "fail"
    assert "HTTP 200 to a request without an API key, expected 401" in auth["message"]


def test_a_vllm_that_enforces_its_key_passes_against_stand_in(capsys, tmp_path, stand_in_vllm):
    server = stand_in_vllm(enforces=True)
    key_file = tmp_path / "key"
    key_file.write_text("k" * 40)
    code, auth = _auth_check(capsys, server.url, "--vllm-key-file", str(key_file))
    assert code == 0 and auth["status"] == "pass"


def test_no_key_to_check_with_warns_loudly_and_fails_unless_allowed_against_stand_in(
    capsys, stand_in_vllm
):
    server = stand_in_vllm(enforces=False)
    code, auth = _auth_check(capsys, server.url)
    assert code == 1 and auth["status"] == "warn"
    assert "was not checked" in auth["message"]
    assert "answered HTTP 200 without a key: anyone who reaches it can use it" in auth["message"]
    code, auth = _auth_check(capsys, server.url, "--allow-warnings")
    assert code == 0 and auth["status"] == "warn"


def test_through_the_front_door_by_default_and_behind_it_with_inside(tmp_path):
    """The settings.json the role rendered with a front door (tests/golden), and a .env."""
    import shutil
    from pathlib import Path

    from r1deploy.cli import build_parser
    from r1deploy.smoke.config import load_config

    VLLM_KEY, OPS_KEY = "v" * 40, "o" * 40  # noqa: N806 - constants of this test
    golden = Path(__file__).resolve().parents[1] / "golden" / "native-front-door"
    stack = tmp_path
    shutil.copy(golden / "settings.json", stack / "settings.json")
    (stack / ".env").write_text(f"VLLM_API_KEY='{VLLM_KEY}'\nAPI_KEY_OPS='{OPS_KEY}'\n")
    config = load_config(build_parser().parse_args(["smoke", "--stack-dir", str(stack)]))
    assert (config.vllm_url, config.vllm_key) == ("https://127.0.0.1:8443", OPS_KEY)
    assert config.verify == str(stack / "front-door" / "tls" / "ca.crt")
    assert (config.inside_vllm_url, config.inside_vllm_key) == ("http://127.0.0.1:8000", VLLM_KEY)
    # --wait-ready waits on the inside: the front door hides the model server's /health.
    from r1deploy.smoke.cli import _health_endpoints

    assert _health_endpoints(config) == {
        "vLLM": "http://127.0.0.1:8000/health",
        "Open WebUI": "http://127.0.0.1:3000/health",
        "tool gateway": "http://127.0.0.1:8090/health",
    }
    inside = load_config(
        build_parser().parse_args(["smoke", "--stack-dir", str(stack), "--inside"])
    )
    assert (inside.vllm_url, inside.vllm_key, inside.verify) == (
        "http://127.0.0.1:8000",
        VLLM_KEY,
        True,
    )


def test_an_untrusted_certificate_is_named_not_taken_for_a_stopped_service():
    import httpx

    from r1deploy.smoke.runner import describe_request_error

    request = httpx.Request("GET", "https://localhost:8443/v1/models")
    exc = httpx.ConnectError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
        "issuer certificate (_ssl.c:1006)",
        request=request,
    )
    message = describe_request_error(exc)
    assert "its certificate is not trusted" in message and "front_door.ca_file" in message
    refused = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    assert "nothing answers there" in describe_request_error(refused)
