"""The gateway's Prometheus metrics: calls by tool and outcome, upstream latency, in flight.

Each app has its own registry (several apps in one process do not clash) and serves it at
GET /metrics. The only labels are the tool's name, taken from the registered routes, and
the outcome, one of OUTCOMES: no argument, URL, query string or secret ever becomes a
label, and the number of series is fixed when the app is built. docs/observability.md
lists the names and what the alert rules in monitoring/ make of them.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from r1deploy.gateway.upstream import GatewayError

OK = "ok"
INVALID_ARGUMENTS = "invalid_arguments"
UPSTREAM_ERROR = "upstream_error"
TIMEOUT = "timeout"
REFUSED_ADDRESS = "refused_address"
TOO_LARGE = "too_large"
UNAUTHORISED = "unauthorised"
OUTCOMES = (
    OK,
    INVALID_ARGUMENTS,
    UPSTREAM_ERROR,
    TIMEOUT,
    REFUSED_ADDRESS,
    TOO_LARGE,
    UNAUTHORISED,
)

# GatewayError.code -> outcome. Every code the gateway raises is listed (a unit test reads
# the gateway's source for them); an unlisted one falls back on its status (outcome_of).
CODE_OUTCOMES = {
    "unauthorised": UNAUTHORISED,
    "invalid-arguments": INVALID_ARGUMENTS,
    "invalid-json": INVALID_ARGUMENTS,
    "request-too-large": TOO_LARGE,
    "response-too-large": TOO_LARGE,
    "upstream-timeout": TIMEOUT,
    # The network policy: a non-public address, or a redirect to another origin.
    "address-refused": REFUSED_ADDRESS,
    "redirect-off-host": REFUSED_ADDRESS,
    "upstream-error": UPSTREAM_ERROR,
    "upstream-unreachable": UPSTREAM_ERROR,
    "upstream-bad-encoding": UPSTREAM_ERROR,
    "too-many-redirects": UPSTREAM_ERROR,
}

# Public HTTP APIs: tens of milliseconds to the 30 s a plugin's timeout_s may allow.
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def outcome_of(exc: GatewayError) -> str:
    """The outcome label of a call the gateway answered with this error."""
    known = CODE_OUTCOMES.get(exc.code)
    if known:
        return known
    return INVALID_ARGUMENTS if 400 <= exc.status < 500 else UPSTREAM_ERROR


class ToolMetrics:
    """One tool's series, bound once: a call costs a few lock-protected additions."""

    def __init__(self, metrics: GatewayMetrics, tool: str):
        self._outcomes = {
            outcome: metrics.calls.labels(tool=tool, outcome=outcome) for outcome in OUTCOMES
        }
        self.upstream_seconds = metrics.upstream_seconds.labels(tool=tool)
        self.in_flight = metrics.in_flight.labels(tool=tool)

    def count(self, outcome: str) -> None:
        self._outcomes[outcome].inc()


class GatewayMetrics:
    """The registry of one app and its series."""

    def __init__(self, tools: list[str]):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.calls = Counter(
            "r1deploy_gateway_tool_calls",
            "Tool calls answered by the gateway, by tool and outcome.",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "r1deploy_gateway_upstream_seconds",
            "Time spent calling the upstream API (redirects included), by tool.",
            ["tool"],
            buckets=UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "r1deploy_gateway_calls_in_flight",
            "Tool calls the gateway is handling now, by tool.",
            ["tool"],
            registry=self.registry,
        )
        # Every series exists from the start at 0, so rate() sees the first failure.
        self.tools = {tool: ToolMetrics(self, tool) for tool in tools}

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
