"""Run named checks in order, time each, and keep going whatever happens.

A check is a function ``(ctx) -> str`` returning a one-line detail on success; it raises
``CheckFailed`` (what went wrong and the fix) or ``CheckSkipped`` (why it does not apply).
Any other exception is a failure too, reported with its type: one broken check never
stops the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import httpx

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"


class CheckFailed(Exception):
    """The check ran and the stack is wrong; the message says what and how to fix it."""

    def __init__(self, message: str, data: dict | None = None):
        super().__init__(message)
        self.data = data or {}


class CheckSkipped(Exception):
    """The check does not apply here (disabled feature, missing prerequisite)."""


class CheckWarning(Exception):
    """The check could not verify a promise it exists for (no key to test auth with): not
    a pass. The smoke exits 1 on a warning unless told to allow warnings."""


@dataclass
class CheckResult:
    name: str
    status: str
    duration_s: float
    message: str
    # Measured values worth keeping (time to first token, the answer seen...).
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Check:
    name: str
    description: str
    func: Callable
    # Checks whose failure makes this one meaningless: it is skipped, naming them.
    needs: tuple[str, ...] = ()


def run_checks(
    checks: Iterable[Check],
    ctx,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    status_of: dict[str, str] = {}
    for check in checks:
        start = time.perf_counter()
        data: dict = {}
        blocked = [n for n in check.needs if status_of.get(n) in (FAIL, SKIP, WARN)]
        if blocked:
            status, message = SKIP, f"needs {', '.join(blocked)}, which did not pass"
        else:
            try:
                detail = check.func(ctx)
                status, message = PASS, detail or ""
                if isinstance(detail, tuple):
                    message, data = detail
            except CheckSkipped as exc:
                status, message = SKIP, str(exc)
            except CheckWarning as exc:
                status, message = WARN, str(exc)
            except CheckFailed as exc:
                status, message, data = FAIL, str(exc), exc.data
            except httpx.HTTPError as exc:
                status, message = FAIL, describe_request_error(exc)
            except Exception as exc:  # a bug in a check must not hide the others
                status, message = FAIL, f"{type(exc).__name__}: {exc}"
        result = CheckResult(
            check.name, status, round(time.perf_counter() - start, 3), message, data
        )
        status_of[check.name] = status
        results.append(result)
        if on_result:
            on_result(result)
    return results


def describe_request_error(exc: httpx.HTTPError) -> str:
    try:
        url = str(exc.request.url)
    except RuntimeError:  # raised before a request was made
        url = "the server"
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        # httpx reports a failed TLS handshake as a connect error: say which it is.
        return (
            f"cannot connect to {url}: its certificate is not trusted ({exc})\n    fix: "
            "trust the CA that issued it (settings.json front_door.ca_file, the stack's CA "
            "or r1_stack_acme_ca_file), or check the front door serves the certificate for "
            "its name"
        )
    if isinstance(exc, httpx.ConnectError):
        return (
            f"cannot connect to {url}: nothing answers there (stopped, still starting, or "
            "wrong URL)\n    fix: check the service is up (docker compose ps; docker "
            "compose logs) and the URL in settings.json"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"{url} did not answer in time\n    fix: check the server's load and logs"
    return f"request to {url} failed: {exc}"
