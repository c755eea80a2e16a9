"""What every doctor check shares: its verdict, the context its inputs come through, the
runner and the reporters.

A check is a function ``(ctx: DoctorContext) -> Verdict``. Its inputs come only through the
context's gatherers (``http``, ``disk_usage``, ``read_log``, ``served_certificate``,
``now``, ``resolve``, ``connect``, and ``host``: the commands and files of this machine,
r1deploy/doctor/runner.py),
which tests replace with recorded answers; a check never fails the run: an
exception in one is reported as that check's FAIL, and the others still run.
"""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx

from r1deploy.doctor.runner import Host, LocalHost
from r1deploy.monitoring.prometheus import describe
from r1deploy.stackdir import StackDir

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
LABEL = {PASS: "PASS", WARN: "WARN", FAIL: "FAIL", SKIP: "SKIP"}
GIB = 1024**3
# How much of a log the checks read: its end, where the last start's story is.
LOG_TAIL_BYTES = 256 * 1024
# The docker runtime's logs come from `docker compose logs`: this many of their last lines.
COMPOSE_LOG_LINES = 2000
COMPOSE_LOG_TIMEOUT_S = 20.0


@dataclass
class Verdict:
    """A check's result: what it saw and, for WARN/FAIL, the cause and the fix."""

    status: str
    seen: str
    cause: str = ""
    fix: str = ""
    data: dict = field(default_factory=dict)


def passed(seen: str, **data) -> Verdict:
    return Verdict(PASS, seen, data=data)


def warned(seen: str, cause: str, fix: str, **data) -> Verdict:
    return Verdict(WARN, seen, cause, fix, data)


def failed(seen: str, cause: str, fix: str, **data) -> Verdict:
    return Verdict(FAIL, seen, cause, fix, data)


def skipped(seen: str) -> Verdict:
    return Verdict(SKIP, seen)


class DoctorCheck(NamedTuple):
    id: str
    description: str
    func: Callable[[DoctorContext], Verdict]


@dataclass
class Probe:
    """One GET of a service's URL: the answer's status and Date header, or the error."""

    url: str
    status: int | None = None
    date: str | None = None
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.status is not None and self.status < 500


def _read_tail(path: Path) -> str | None:
    """The end of a log file as text; None when it is missing or unreadable."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def _disk_usage(path: str) -> tuple:
    return shutil.disk_usage(path)  # looked up at call time: tests replace it


def _served_certificate(url: str, timeout_s: float) -> bytes:
    """The DER certificate a TLS server at ``url`` presents (not verified: its dates are
    what is asked)."""
    import socket
    import ssl
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        return tls.getpeercert(binary_form=True)


def _resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (OSError, socket.gaierror: it does not)."""
    import socket

    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def _connect(address: str, port: int, timeout_s: float) -> None:
    """Open a TCP connection to ``address`` and close it (OSError: it did not open)."""
    import socket

    with socket.create_connection((address, port), timeout=timeout_s):
        pass


def default_host() -> Host:
    return LocalHost()  # looked up at call time: tests replace it


@dataclass
class DoctorContext:
    """The stack and the gatherers every input comes through (tests replace them)."""

    stack: StackDir
    timeout_s: float = 5.0
    min_free_bytes: int = 5 * GIB
    http: httpx.Client | None = None
    disk_usage: Callable[[str], tuple] = _disk_usage
    read_log: Callable[[Path], str | None] = _read_tail
    served_certificate: Callable[[str, float], bytes] = _served_certificate
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    resolve: Callable[[str, int], list[str]] = _resolve
    connect: Callable[[str, int, float], None] = _connect
    host: Host | None = None
    # The controller's secrets/<host>/ directory (--secrets-dir): None when not given.
    secrets_dir: Path | None = None
    # Docker runtime: the containers' logs saved as <service>.log (--logs-dir), when the
    # doctor runs where `docker compose logs` cannot (make doctor runs it in a container).
    logs_dir: Path | None = None
    probes: dict[str, Probe] = field(default_factory=dict)
    # What a check gathered that others reuse in the same run (the NVIDIA facts).
    facts: dict[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if self.host is None:
            self.host = default_host()
        if self.http is None:
            # Health only: a front door's certificate is frontdoor.certificate's business.
            self.http = httpx.Client(verify=False, follow_redirects=False)

    @property
    def settings(self) -> dict:
        return self.stack.settings

    @property
    def native(self) -> bool:
        return self.settings.get("runtime") == "native"

    def log_path(self, service: str) -> Path:
        return self.stack.path / "native" / "logs" / f"{service}.log"

    def log_name(self, service: str) -> str:
        """Where ``service``'s log is read from, for people: a file or a command."""
        if self.native:
            return str(self.log_path(service))
        command = f"docker compose --project-directory {self.stack.path} logs {service}"
        if self.logs_dir is not None:
            return f"{self.logs_dir / f'{service}.log'} ({command})"
        return command

    def service_log(self, service: str) -> str | None:
        """The end of ``service``'s log, or None when it cannot be read: the native runtime's
        file, or the docker runtime's container log (``docker compose logs``), read once."""
        if self.native:
            return self.read_log(self.log_path(service))
        if self.logs_dir is not None:
            return self.read_log(self.logs_dir / f"{service}.log")
        key = f"compose-log:{service}"
        if key not in self.facts:
            result = self.host.run(
                ["docker", "compose", "--project-directory", str(self.stack.path), "logs"]
                + ["--no-color", "--no-log-prefix", "--tail", str(COMPOSE_LOG_LINES), service],
                COMPOSE_LOG_TIMEOUT_S,
            )
            self.facts[key] = result.stdout + result.stderr if result.ok else None
        return self.facts[key]

    def probe(self, url: str) -> Probe:
        """GET ``url`` once per run; later checks reuse the answer."""
        if url not in self.probes:
            try:
                response = self.http.get(url, timeout=self.timeout_s)
                self.probes[url] = Probe(url, response.status_code, response.headers.get("date"))
            except httpx.HTTPError as exc:
                self.probes[url] = Probe(url, error=describe(exc))
        return self.probes[url]


@dataclass
class DoctorResult:
    id: str
    status: str
    seen: str
    cause: str
    fix: str
    duration_s: float
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def run_checks(
    checks: Iterable[DoctorCheck],
    ctx: DoctorContext,
    on_result: Callable[[DoctorResult], None] | None = None,
) -> list[DoctorResult]:
    results = []
    for check in checks:
        start = time.perf_counter()
        try:
            verdict = check.func(ctx)
        except Exception as exc:  # a bug in one check must not hide the others
            verdict = failed(
                f"the check itself broke: {type(exc).__name__}: {exc}",
                "a bug in r1deploy doctor, or an input it does not expect",
                "report it with this line; the other checks still ran",
            )
        result = DoctorResult(
            check.id,
            verdict.status,
            verdict.seen,
            verdict.cause,
            verdict.fix,
            round(time.perf_counter() - start, 3),
            verdict.data,
        )
        results.append(result)
        if on_result:
            on_result(result)
    return results


def text_line(result: DoctorResult, stream=sys.stdout) -> None:
    print(f"{LABEL[result.status]:<5} {result.id:<22} {result.seen}", file=stream, flush=True)
    for name in ("cause", "fix"):
        value = getattr(result, name)
        if value and result.status in (WARN, FAIL):
            first, *rest = value.splitlines()
            print(f"      {name}: {first}", file=stream, flush=True)
            for line in rest:
                print(f"        {line}", file=stream, flush=True)


def summary(results: list[DoctorResult], wall_s: float) -> str:
    counts = Counter(r.status for r in results)
    return (
        f"{counts[PASS]} passed, {counts[WARN]} warned, {counts[FAIL]} failed, "
        f"{counts[SKIP]} skipped in {wall_s:.2f}s"
    )


def to_json(results: list[DoctorResult], wall_s: float, exit_code: int, stack_dir: str) -> str:
    return json.dumps(
        {
            "stack_dir": stack_dir,
            "exit_code": int(exit_code),
            "wall_s": round(wall_s, 3),
            "counts": {s: sum(r.status == s for r in results) for s in (PASS, WARN, FAIL, SKIP)},
            "checks": [r.to_dict() for r in results],
        },
        indent=2,
        default=str,
    )
