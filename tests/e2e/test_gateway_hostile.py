"""The hostile-upstream corpus, end to end (issue 14): the real gateway process
(`r1deploy serve-tools`, the console script) against a hostile local upstream, both in a
loopback-only network namespace with the client, so nothing here can reach beyond it.

The unit tier (tests/unit/test_hostile_inputs.py, test_gateway*.py) runs the gateway's
app in-process against a polite stub; this runs the server as deployed, against answers
built to hurt it (tests/e2e/hostile_upstream.py lists them): decompression bombs, endless
and over-cap bodies, a slowloris, answers that are not HTTP, redirects to the metadata
address and to another loopback port, and plugins pointing at refused addresses. For
each case it asserts the gateway's status and error, and that the call took at most the
plugin's timeout_s plus a margin; after the corpus (and a burst of concurrent bombs) the
gateway's peak RSS (VmHWM) stays bounded and it still answers /health and a normal call.

Needs root and `unshare` (util-linux) to make the namespace; skipped otherwise (CI runs
as root). Figures print with `pytest -rP`. docs/security.md lists the cases.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import hostile_upstream as hostile

REPO = Path(__file__).resolve().parents[2]
GATEWAY_BIN = Path(sys.executable).parent / "r1deploy"
TIMEOUT_S = 3.0  # each plugin's timeout_s
CAP = 64 * 1024  # each plugin's max_response_bytes
# A call may take its timeout plus this: two busy cores (CI runs other tiers alongside).
MARGIN_S = 4.0
# The gateway's peak resident memory after the corpus. It starts at about 60 MiB; one
# bomb decoded whole would be 400 MB.
MAX_GATEWAY_HWM = 200 * 1024 * 1024
MAX_HWM_GROWTH = 64 * 1024 * 1024
BURST = 16  # concurrent bombs
UPSTREAM = f"http://127.0.0.1:{hostile.UPSTREAM_PORT}"


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    error: str | None
    detail: str  # a part of the answer's "detail"
    url: str | None = None  # default: the hostile upstream's /<name>
    allow_private_network: bool = True
    waits_for_timeout: bool = False
    known_bug: str | None = None  # the gateway answers otherwise today: xfail, strict


TOO_LARGE = f"larger than max_response_bytes ({CAP} bytes)"
TIMED_OUT = f"did not answer within {TIMEOUT_S:g} s"
CASES = [
    Case("gzip-bomb", 502, "response-too-large", TOO_LARGE),
    Case("deflate-bomb", 502, "response-too-large", TOO_LARGE),
    Case("corrupt-gzip", 502, "upstream-bad-encoding", "the body does not decode"),
    Case("endless-chunked", 502, "response-too-large", TOO_LARGE),
    Case("no-length", 502, "response-too-large", TOO_LARGE),
    Case("huge-length", 502, "response-too-large", TOO_LARGE),
    Case("slow-body", 504, "upstream-timeout", TIMED_OUT, waits_for_timeout=True),
    Case("slow-headers", 504, "upstream-timeout", TIMED_OUT, waits_for_timeout=True),
    Case("stalled-body", 504, "upstream-timeout", TIMED_OUT, waits_for_timeout=True),
    Case("truncated", 502, "upstream-unreachable", "the answer broke off"),
    Case("reset-body", 502, "upstream-unreachable", "the answer broke off"),
    Case("endless-headers", 502, "upstream-unreachable", "cannot reach 127.0.0.1"),
    Case("not-http", 502, "upstream-unreachable", "cannot reach 127.0.0.1"),
    Case(
        "redirect-metadata",
        502,
        "redirect-off-host",
        "redirected to http://169.254.169.254; the gateway follows redirects only within "
        f"{UPSTREAM}",
    ),
    Case(
        "redirect-loopback",
        502,
        "redirect-off-host",
        f"redirected to http://127.0.0.1; the gateway follows redirects only within {UPSTREAM}",
    ),
    Case("redirect-loop", 502, "too-many-redirects", "more than 5 redirects"),
    # Plugins without allow_private_network: refused before any connection.
    Case(
        "refused-loopback",
        502,
        "address-refused",
        "upstream host 127.0.0.1 resolves to 127.0.0.1 (loopback address): refused",
        url=f"{UPSTREAM}/echo",
        allow_private_network=False,
    ),
    Case(
        "refused-localhost",
        502,
        "address-refused",
        "upstream host localhost resolves to ",
        url=f"http://localhost:{hostile.UPSTREAM_PORT}/echo",
        allow_private_network=False,
    ),
    Case(
        "refused-metadata",
        502,
        "address-refused",
        "resolves to 169.254.169.254 (link-local / cloud metadata address): refused",
        url=hostile.METADATA_URL,
        allow_private_network=False,
    ),
    # The gateway does not parse answers: a 200 that is not JSON is passed on unchanged.
    Case("not-json", 200, None, ""),
]
NORMAL = Case("echo", 200, None, "")


def tools_file(path: Path) -> Path:
    plugins = [
        {
            "id": case.name.replace("-", "_"),
            "name": case.name,
            "description": f"hostile upstream case {case.name}",
            "params": {"type": "object"},
            "url": case.url or f"{UPSTREAM}/{case.name}",
            "method": "GET",
            "timeout_s": TIMEOUT_S,
            "max_response_bytes": CAP,
            "allow_private_network": case.allow_private_network,
        }
        for case in [*CASES, NORMAL]
    ]
    path.write_text(json.dumps(plugins, indent=2))
    return path


class Namespace:
    """The runner inside the namespace (hostile_upstream.py inside): one JSON line out,
    one JSON line back."""

    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log
        self._buffer = b""

    def read_line(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                raise AssertionError(
                    f"no answer from the namespace within {timeout_s} s{self.log_tail()}"
                )
            data = os.read(self.process.stdout.fileno(), 65536)
            if not data:
                raise AssertionError(f"the namespace runner exited{self.log_tail()}")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def ask(self, op: dict, timeout_s: float = 60) -> dict:
        self.process.stdin.write(json.dumps(op).encode() + b"\n")
        self.process.stdin.flush()
        return self.read_line(timeout_s)

    def log_tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n--- servers' log ---\n" + "\n".join(text.splitlines()[-30:])


def _cannot_make_namespace() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace (unshare --net); CI runs as root"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux) to make a network namespace"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here: unshare --net: {probe.stderr.strip()}"
    return None


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.fixture(scope="module")
def namespace(tmp_path_factory):
    why = _cannot_make_namespace()
    if why:
        pytest.skip(why)
    assert GATEWAY_BIN.is_file(), f"no console script {GATEWAY_BIN}: run pytest from the venv"
    work = tmp_path_factory.mktemp("hostile")
    log = work / "servers.log"
    key = secrets.token_urlsafe(32)
    process = subprocess.Popen(
        [
            "unshare",
            "--net",
            "--",
            sys.executable,
            "-m",
            "tests.e2e.hostile_upstream",
            "inside",
            "--gateway",
            str(GATEWAY_BIN),
            "--tools",
            str(tools_file(work / "tools.json")),
            "--log",
            str(log),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "TOOLS_GATEWAY_KEY": key},
    )
    ns = Namespace(process, log)
    try:
        ready = ns.read_line(180)
        assert ready.get("ready"), f"{ready}{ns.log_tail()}"
        ns.gateway_pid = ready["gateway_pid"]
        yield ns
    finally:
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def corpus(namespace) -> dict:
    """Every case once, then a burst of concurrent bombs: the answers, the gateway's
    memory before and after, and what reached the upstream."""
    started = time.monotonic()
    normal = namespace.ask({"op": "call", "tool": NORMAL.name})
    before = memory(namespace.gateway_pid)
    answers = {case.name: namespace.ask({"op": "call", "tool": case.name}) for case in CASES}
    burst = namespace.ask({"op": "burst", "tool": "gzip-bomb", "n": BURST})["answers"]
    after = memory(namespace.gateway_pid)
    results = {
        "normal": normal,
        "answers": answers,
        "burst": burst,
        "memory_before": before,
        "memory_after": after,
        "seconds": time.monotonic() - started,
        "health": namespace.ask({"op": "get", "port": hostile.GATEWAY_PORT, "path": "/health"}),
        "normal_after": namespace.ask({"op": "call", "tool": NORMAL.name}),
        "hits": namespace.ask({"op": "get", "port": hostile.UPSTREAM_PORT, "path": "/hits"}),
    }
    print(f"corpus: {len(CASES)} cases and {BURST} concurrent bombs in {results['seconds']:.1f} s")
    return results


def body(answer: dict) -> bytes:
    return base64.b64decode(answer["body_b64"])


def mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def test_the_namespace_reaches_nothing_beyond_loopback(namespace):
    facts = namespace.ask({"op": "net"})
    print(f"inside the namespace: links {facts['links']}, connects {facts['connect']}")
    assert facts["links"] == ["lo"], facts
    if facts["ip_link"] is not None:
        assert [line.split(":")[1].strip() for line in facts["ip_link"].splitlines()] == ["lo"]
    # No route at all: the kernel refuses at once rather than timing out (or has no IPv6).
    assert set(facts["connect"].values()) <= {"ENETUNREACH", "EAFNOSUPPORT"}, facts["connect"]
    assert facts["connect"]["1.1.1.1:443"] == "ENETUNREACH"


@pytest.mark.parametrize("name", sorted(hostile.BOMBS))
def test_the_bombs_are_small_on_the_wire_and_huge_decoded(namespace, name):
    served = namespace.ask({"op": "get", "port": hostile.UPSTREAM_PORT, "path": f"/{name}"})
    header = served["headers"]["content-encoding"]
    payload = body(served)
    assert served["body_bytes"] == len(payload) < 1024, "a few hundred bytes on the wire"
    decoded = hostile.decoded_size(payload, header, limit=10**10)
    print(
        f"{name}: Content-Encoding {header}, {len(payload)} bytes on the wire, "
        f"{decoded} decoded ({decoded // CAP}x the cap)"
    )
    assert len(header.split(",")) == 2
    assert decoded == hostile.BOMB_BYTES > 100 * CAP


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            id=case.name,
            marks=[pytest.mark.xfail(reason=case.known_bug, raises=AssertionError, strict=True)],
        )
        if case.known_bug
        else pytest.param(case, id=case.name)
        for case in CASES
    ],
)
def test_hostile_upstream_answer(corpus, case):
    answer = corpus["answers"][case.name]
    print(
        f"{case.name}: HTTP {answer['status']} in {answer['seconds']:.2f} s: {body(answer)[:200]!r}"
    )
    assert answer["seconds"] < TIMEOUT_S + MARGIN_S, answer
    if case.waits_for_timeout:
        assert answer["seconds"] >= TIMEOUT_S - 0.1, answer
    assert answer["status"] == case.status, answer
    if case.error is None:
        assert body(answer) == hostile.NOT_JSON
        assert answer["headers"]["content-type"] == "application/json"
        return
    error = json.loads(body(answer))
    assert error["error"] == case.error, error
    assert error["detail"].startswith(f"{case.name}: "), error
    assert case.detail in error["detail"], error


def test_refused_answers_reach_nothing(corpus):
    """No connection to the elsewhere port (the redirect), none for refused plugins (the
    upstream saw /echo only for the normal calls), and the metadata redirect went
    nowhere (the namespace has no route to it anyway)."""
    hits = json.loads(body(corpus["hits"]))
    seen = [(hit["port"], hit["path"]) for hit in hits]
    assert (hostile.ELSEWHERE_PORT, "/secret") not in seen
    assert all(port == hostile.UPSTREAM_PORT for port, _ in seen), seen
    assert seen.count((hostile.UPSTREAM_PORT, "/echo")) == 2, seen
    sent = {hit["path"]: hit["sent"] for hit in hits}
    print(
        "bytes the upstream wrote before the gateway went away: "
        + ", ".join(f"{path} {size}" for path, size in sent.items() if size)
    )
    # The over-cap answers really were over the cap (the endless ones are cut off by the
    # gateway closing the connection; what is in socket buffers counts as written).
    # /huge-length is left out: the gateway refuses it from its Content-Length header, so
    # how much the upstream got written before that is a race (CI saw exactly the cap).
    for path in ("/endless-chunked", "/no-length"):
        assert sent[path] > CAP, (path, sent[path])


def test_concurrent_bombs_are_each_refused(corpus):
    slowest = max(answer["seconds"] for answer in corpus["burst"])
    print(f"{BURST} concurrent gzip bombs: slowest answered in {slowest:.2f} s")
    for answer in corpus["burst"]:
        assert answer["status"] == 502, answer
        assert json.loads(body(answer))["error"] == "response-too-large"
    assert slowest < TIMEOUT_S + MARGIN_S


def test_gateway_memory_stays_bounded_and_it_keeps_serving(corpus):
    before, after = corpus["memory_before"], corpus["memory_after"]
    print(
        f"gateway memory: VmRSS {mib(before['VmRSS'])} before the corpus, "
        f"VmHWM {mib(after['VmHWM'])} after it (VmRSS {mib(after['VmRSS'])})"
    )
    assert after["VmHWM"] < MAX_GATEWAY_HWM, after
    assert after["VmHWM"] - before["VmRSS"] < MAX_HWM_GROWTH, (before, after)
    health = corpus["health"]
    assert health["status"] == 200, health
    assert json.loads(body(health)) == {"status": "ok", "tools": len(CASES) + 1}
    for answer in (corpus["normal"], corpus["normal_after"]):
        assert answer["status"] == 200, answer
        assert json.loads(body(answer)) == {"path": "/echo"}
