"""The hostile-input corpus (issue 14): what attackers sent the validators, as they sent it.

Each case asserts the answer (exit code, rule, location) and that time and memory stay
bounded. A case runs in a forked child (tests/support/bounded.py) under an address-space
limit and a wall-clock limit, so a regression fails its test instead of hanging the
suite or exhausting the machine. The measured figures print with `pytest -rP`.
docs/security.md lists the cases.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from r1deploy.cli import main
from tests.support.bounded import MIB, run_bounded

REPO = Path(__file__).resolve().parents[2]
# Generous: the fixed code answers each case in at most a few hundred milliseconds of
# CPU and a few MiB. The wall-clock bound is looser: on a crowded machine (two cores and
# a running vLLM) the slowest case took 2.7 s of wall time for 0.4 s of CPU.
MAX_CPU_SECONDS = 1.0
MAX_SECONDS = 10.0
MAX_RSS_GROWTH = 32 * MIB


def assert_bounded(outcome) -> None:
    assert outcome.error is None, outcome.error
    assert outcome.cpu_seconds < MAX_CPU_SECONDS, outcome
    assert outcome.seconds < MAX_SECONDS, outcome
    assert outcome.rss_growth < MAX_RSS_GROWTH, outcome


def cli(*argv: str) -> tuple[int, str]:
    """Run the r1deploy CLI in-process with real UTF-8 streams; exit code and output."""
    saved = sys.stdout, sys.stderr
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    sys.stdout = sys.stderr = stream
    try:
        code = main(list(argv))
    finally:
        sys.stdout, sys.stderr = saved
        stream.detach()  # keep the buffer open once the wrapper is collected
    return code, buffer.getvalue().decode("utf-8", "backslashreplace")


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Import everything and load the schemas before forking: the child measures the case."""
    cli("tools", "validate", str(REPO / "tools.json"))
    cli("compose", "validate", str(REPO / "tests/golden/cpu/compose.yaml"))


def bounded_cli(label: str, *argv: str):
    outcome = run_bounded(cli, *argv)
    print(f"{label}: {outcome}")
    assert_bounded(outcome)
    return outcome.result


# --- hostile files: (name, which validator, how to make it, rule, where) --------------------


def fifo(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"fifo{suffix}"
    os.mkfifo(path)
    return path


def dev_zero(tmp_path: Path, suffix: str) -> Path:
    return Path("/dev/zero")


def written(text: str | bytes):
    def make(tmp_path: Path, suffix: str) -> Path:
        path = tmp_path / f"hostile{suffix}"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return make


def over_the_size_cap(tmp_path: Path, suffix: str) -> Path:
    from r1deploy.inputfile import MAX_INPUT_BYTES

    path = tmp_path / f"large{suffix}"
    path.write_bytes(b" " * (MAX_INPUT_BYTES + 1))
    return path


def billion_laughs(levels: int) -> str:
    """Each anchor a list of nine aliases of the previous one: 9**levels values."""
    lines = ['x-l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x-l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines + ["services: {}"]) + "\n"


PLUGIN = '{"id": "a", "name": "a", "description": "d", "params": {"type": "object"}, '
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass(frozen=True)
class FileCase:
    name: str
    validator: str  # "tools" or "compose"
    make: object
    rule: str
    where: str  # ":line:col" after the file name, or "" when the file has no position


FILE_CASES = [
    FileCase("fifo", "tools", fifo, "input-not-a-file", ""),
    FileCase("fifo", "compose", fifo, "input-not-a-file", ""),
    FileCase("dev-zero", "tools", dev_zero, "input-not-a-file", ""),
    FileCase("dev-zero", "compose", dev_zero, "input-not-a-file", ""),
    FileCase("over-size-cap", "tools", over_the_size_cap, "input-too-large", ""),
    FileCase("over-size-cap", "compose", over_the_size_cap, "input-too-large", ""),
    FileCase(
        "latin-1",
        "tools",
        written('[\n {"id": "caf\xe9"}]'.encode("latin-1")),
        "input-encoding",
        ":2:13",
    ),
    FileCase(
        "latin-1",
        "compose",
        written("services:\n  caf\xe9: {}\n".encode("latin-1")),
        "input-encoding",
        ":2:6",
    ),
    FileCase("nested-100k", "tools", written(DEEP), "json-limit", ":1:65"),
    FileCase("nested-100k", "compose", written("x: " + DEEP + "\n"), "yaml-limit", ":1:67"),
    FileCase(
        "half-a-million-values",
        "tools",
        written("[" + "1," * 500_000 + "1]"),
        "json-limit",
        ":1:200001",
    ),
    FileCase(
        "half-a-million-values",
        "compose",
        written("x:\n" + "- 1\n" * 250_000),
        "yaml-limit",
        ":10001:3",
    ),
    # 9**7 values in 367 bytes; 9**6 (319 bytes) was called valid after 2 s and 136 MiB.
    FileCase("billion-laughs-7", "compose", written(billion_laughs(7)), "yaml-limit", ":5:12"),
    FileCase("billion-laughs-6", "compose", written(billion_laughs(6)), "yaml-limit", ":5:12"),
    FileCase(
        "recursive-alias", "compose", written("x: &a [*a]\nservices: {}\n"), "yaml-limit", ":1:8"
    ),
    FileCase(
        "5000-digit-int",
        "tools",
        written('[{"timeout_s": ' + "1" * 5000 + "}]"),
        "json-syntax",
        ":1:16",
    ),
    FileCase(
        "5000-digit-int",
        "compose",
        written("services: {}\nx-a: " + "1" * 5000 + "\n"),
        "yaml-syntax",
        ":2:6",
    ),
    FileCase(
        "impossible-date",
        "compose",
        written("services: {}\nx-a: 2001-02-30\n"),
        "yaml-syntax",
        ":2:6",
    ),
    FileCase(
        "nul-character", "compose", written('services: {}\nx-a: "\0"\n'), "yaml-syntax", ":2:7"
    ),
    FileCase("lone-surrogate-key", "tools", written('[{"\\ud800": 1}]'), "unknown-key", ":1:2"),
    FileCase(
        "lone-surrogate-key",
        "compose",
        written('services:\n  "\\ud800": {}\n'),
        "image-pinned",
        ":2:13",
    ),
    FileCase(
        "timeout-nan",
        "tools",
        written(
            "[" + PLUGIN + '"url": "https://a.example/x", "method": "GET",\n "timeout_s": NaN}]'
        ),
        "number-not-finite",
        ":2:15",
    ),
    FileCase(
        "max-response-1e999",
        "tools",
        written(
            "[" + PLUGIN + '"url": "https://a.example/x", "method": "GET",\n'
            ' "max_response_bytes": 1e999}]'
        ),
        "number-not-finite",
        ":2:24",
    ),
    FileCase(
        "duplicate-key",
        "tools",
        written(
            "[" + PLUGIN + '"url": "https://a.example/x", "method": "GET",\n'
            ' "allow_private_network": false, "allow_private_network": true}]'
        ),
        "duplicate-key",
        ":2:34",
    ),
    FileCase(
        "octal-host",
        "tools",
        written("[" + PLUGIN + '\n "url": "http://0177.0.0.1/x", "method": "GET"}]'),
        "url-host-not-canonical",
        ":2:9",
    ),
    FileCase(
        "unclosed-ipv6-host",
        "tools",
        written("[" + PLUGIN + '\n "url": "http://[::1/x", "method": "GET"}]'),
        "url-invalid",
        ":2:9",
    ),
    FileCase(
        "port-out-of-range",
        "tools",
        written("[" + PLUGIN + '\n "url": "https://a.example:99999/x", "method": "GET"}]'),
        "url-invalid",
        ":2:9",
    ),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[f"{c.validator}-{c.name}" for c in FILE_CASES])
def test_hostile_file_gets_a_located_finding_fast(tmp_path, case):
    suffix = ".json" if case.validator == "tools" else ".yaml"
    path = case.make(tmp_path, suffix)
    label = f"{case.validator} {case.name}"
    code, output = bounded_cli(label, case.validator, "validate", str(path))
    assert code == 1, output
    assert f"{path}{case.where}: error [{case.rule}]" in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("content", "finding"),
    [
        ("VLLM_API_KEY=caf\xe9\n".encode("latin-1"), ":1:17: error [input-encoding]"),
        (b"#" * (1024 * 1024 + 1), ": error [input-too-large]"),
    ],
    ids=["latin-1", "over-size-cap"],
)
def test_a_dot_env_compose_validate_cannot_read_is_a_finding(tmp_path, content, finding):
    compose = tmp_path / "compose.yaml"
    compose.write_text((REPO / "tests/golden/cpu/compose.yaml").read_text())
    (tmp_path / ".env").write_bytes(content)
    code, output = bounded_cli("compose .env", "compose", "validate", str(compose))
    assert code == 1, output
    assert f"{tmp_path / '.env'}{finding}" in output, output


@pytest.mark.parametrize(
    "host", ["0177.0.0.1", "2130706433", "0x7f.1", "127.1", "127.0.0.01", "1.2.3.4."]
)
def test_ipv4_in_disguise_is_refused_with_its_canonical_form(tmp_path, host):
    path = tmp_path / "tools.json"
    path.write_text("[" + PLUGIN + f'"url": "http://{host}/x", "method": "GET"}}]')
    code, output = cli("tools", "validate", str(path))
    assert code == 1
    assert "[url-host-not-canonical] /0/url:" in output
    canonical = "1.2.3.4" if host == "1.2.3.4." else "127.0.0.1"
    assert f"fix: write the address as {canonical}" in output


def test_names_and_dotted_decimal_hosts_are_not_ipv4_in_disguise(tmp_path):
    hosts = ["127.0.0.1", "api.example.com", "api.v2", "[::1]", "10.0.0.1"]
    path = tmp_path / "tools.json"
    plugins = [
        PLUGIN.replace('"a"', f'"p{i}"') + f'"url": "https://{h}/x", "method": "GET"}}'
        for i, h in enumerate(hosts)
    ]
    path.write_text("[" + ",".join(plugins) + "]")
    code, output = cli("tools", "validate", str(path))
    assert code == 0, output


@pytest.mark.parametrize(
    "case",
    [c for c in FILE_CASES if c.name in ("timeout-nan", "duplicate-key", "octal-host")],
    ids=lambda c: c.name,
)
def test_the_gateway_refuses_the_tools_files_the_validator_refuses(tmp_path, monkeypatch, case):
    path = case.make(tmp_path, ".json")
    monkeypatch.setenv("TOOLS_GATEWAY_KEY", "k" * 40)
    # Bounded: a gateway that accepted the file would serve until killed.
    code, output = run_bounded(cli, "serve-tools", "--tools", str(path), "--port", "1").result
    assert code == 1
    assert f"[{case.rule}]" in output


# --- hostile calls to the tool gateway ------------------------------------------------------

GATEWAY_KEY = "hostile-inputs-gateway-key-0123456789"
BOMB = (400_000_000, 2)  # 400 MB of zeros, gzipped twice: 790 bytes on the wire
STRING_ITEM = {
    "type": "object",
    "properties": {"item": {"type": "string"}},
    "required": ["item"],
}


def gateway_tools(upstream: str) -> list[dict]:
    def tool(name: str, url: str, method: str = "GET", **extra) -> dict:
        return {
            "id": name,
            "name": name,
            "description": name,
            "params": extra.pop("params", STRING_ITEM),
            "url": url,
            "method": method,
            "allow_private_network": True,
            **extra,
        }

    size, layers = BOMB
    return [
        tool("bomb", f"{upstream}/gzip/{layers}/{size}?item={{item}}", max_response_bytes=1000),
        tool("lookup", f"{upstream}/echo/{{item}}/tail"),
        tool("store", f"{upstream}/echo", "POST", params={"type": "object"}),
    ]


def gateway_call(tool: str, body: bytes) -> tuple[int, dict, int, list[str]]:
    """One hostile call, then a normal one: both answers and what reached the upstream."""
    from fastapi.testclient import TestClient

    from r1deploy.gateway import create_app
    from tests.support.stub_upstream import StubUpstream

    headers = {"Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json"}
    with StubUpstream() as stub:
        app = create_app(gateway_tools(stub.url), GATEWAY_KEY, environ={})
        with TestClient(app) as client:
            answer = client.post(f"/tools/{tool}", content=body, headers=headers)
            normal = client.post("/tools/lookup", json={"item": "ok"}, headers=headers)
        reached = [seen.raw_path for seen in stub.seen]
    return answer.status_code, answer.json(), normal.status_code, reached


@pytest.fixture(scope="module")
def gateway_warm():
    """Build the bomb and import the gateway before forking: the child measures the call."""
    from tests.support.stub_upstream import gzip_layers

    gzip_layers(*BOMB)
    gateway_call("lookup", b'{"item": "warm"}')


@dataclass(frozen=True)
class CallCase:
    name: str
    tool: str
    body: bytes
    status: int
    error: str
    pointer: str | None


CALL_CASES = [
    CallCase("gzip-bomb", "bomb", b'{"item": "x"}', 502, "response-too-large", None),
    CallCase(
        "nested-arrays-100k",
        "store",
        b"[" * 100_000 + b"]" * 100_000,
        400,
        "invalid-arguments",
        "/0" * 64,
    ),
    CallCase(
        "nested-objects-50k",
        "store",
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        400,
        "invalid-arguments",
        "/a" * 64,
    ),
    CallCase(
        "half-a-million-values",
        "store",
        b'{"a": [' + b"1," * 500_000 + b"1]}",
        400,
        "invalid-arguments",
        "/a/9998",
    ),
    CallCase("nan-argument", "store", b'{"limit": NaN}', 400, "invalid-arguments", "/limit"),
    CallCase(
        "infinity-argument", "store", b'{"x": [1, -Infinity]}', 400, "invalid-arguments", "/x/1"
    ),
    CallCase(
        "url-over-64-kib",
        "lookup",
        b'{"item": "' + b"/" * 30_000 + b'"}',
        400,
        "invalid-arguments",
        "/item",
    ),
    CallCase("empty-path-segment", "lookup", b'{"item": ""}', 400, "invalid-arguments", "/item"),
    CallCase("not-utf-8", "lookup", b'{"item": "caf\xe9"}', 400, "invalid-json", ""),
]


@pytest.mark.parametrize("case", CALL_CASES, ids=lambda c: c.name)
def test_hostile_call_is_answered_and_the_gateway_keeps_serving(gateway_warm, case):
    outcome = run_bounded(gateway_call, case.tool, case.body)
    print(f"gateway {case.name}: {outcome}")
    assert_bounded(outcome)
    status, answer, normal_status, reached = outcome.result
    assert (status, answer["error"]) == (case.status, case.error), answer
    assert answer.get("pointer") == case.pointer, answer
    assert normal_status == 200, "the gateway must keep serving after a hostile call"
    if case.status == 400:
        assert reached == ["/echo/ok/tail"], "nothing may leave the host for a refused call"
