"""Reading a Prometheus server's HTTP API (/api/v1/...): the one place `r1deploy top`
(r1deploy/top/source.py) and `r1deploy doctor` (r1deploy/doctor/monitoring.py) send their
requests, with the caller's client, base URL and timeout, and turn what goes wrong into a
PrometheusAPIError that says what: nothing answers, a user and password asked for, an answer
that is not Prometheus' API, or the API's own error. Each caller words its message from it.

The front door's Basic auth (user ops) is the client's: ``client(auth=(user, password))``.
"""

from __future__ import annotations

import httpx

# PrometheusAPIError.kind
UNREACHABLE = "unreachable"  # no answer: connection refused, no route, timeout
REFUSED = "refused"  # HTTP 401 or 403: it asks for a user and password
NOT_API = "not-api"  # an answer that is not Prometheus' HTTP API (a proxy's page, a 404)
API_ERROR = "api-error"  # Prometheus' own error: {"status": "error", "errorType", "error"}


def describe(exc: httpx.HTTPError) -> str:
    """A request that got no answer, in words (any URL, not only Prometheus')."""
    if isinstance(exc, httpx.ConnectError):
        return "nothing answers there (connection refused or no route)"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


class PrometheusAPIError(RuntimeError):
    """A request to Prometheus' HTTP API that did not get its data: ``url`` (the request's),
    ``kind`` (one of the constants above), ``reason`` (what, in words) and ``status_code``
    (None when nothing answered)."""

    def __init__(self, url: str, kind: str, reason: str, status_code: int | None = None):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.kind = kind
        self.reason = reason
        self.status_code = status_code


def client(*, auth: tuple[str, str] | None = None) -> httpx.Client:
    """A client for a Prometheus URL: redirects followed (a front door's /prometheus),
    Basic auth where the URL asks for it."""
    return httpx.Client(follow_redirects=True, auth=auth)


def api_get(http: httpx.Client, base_url: str, path: str, *, timeout_s: float, params=None) -> dict:
    """GET ``base_url`` + ``path`` (e.g. /api/v1/targets): the answer's ``data``, or
    PrometheusAPIError."""
    url = f"{base_url.rstrip('/')}{path}"
    try:
        response = http.get(url, params=params, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise PrometheusAPIError(url, UNREACHABLE, describe(exc)) from None
    status = response.status_code
    if status in (401, 403):
        raise PrometheusAPIError(url, REFUSED, f"HTTP {status}", status)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("status", "success") != "success":
        reason = f"{answer.get('errorType')}: {answer.get('error')}"
        raise PrometheusAPIError(url, API_ERROR, reason, status)
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
        reason = f"HTTP {status}, not an answer of Prometheus' HTTP API"
        raise PrometheusAPIError(url, NOT_API, reason, status)
    return answer["data"]


def instant_query(http: httpx.Client, base_url: str, promql: str, *, timeout_s: float) -> list:
    """The series of an instant query (/api/v1/query): [] where the result is not a vector."""
    data = api_get(http, base_url, "/api/v1/query", params={"query": promql}, timeout_s=timeout_s)
    return (data.get("result") or []) if data.get("resultType") == "vector" else []
