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
    assert "never came up within 2s: vLLM (last: ConnectionError)" in capsys.readouterr().out


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


@pytest.mark.parametrize("answer, expected", [
    ("so \\boxed{max = 2, min = -2}", (2, -2)),
    ("The maximum is 2 and the minimum is -2.", (2, -2)),
    ("\\boxed{\\text{Maximum: } 2, \\text{ Minimum: } -2}", (2, -2)),
    ("\\boxed{2} and \\boxed{-2}", (2, -2)),
    ("max 18, min -2", (18, -2)),
])
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
