"""The router's command line from a worker list and a few settings (docs/scale-out.md).

Thin on purpose: one function that validates its input and returns the argv of
``vllm-router`` (0.1.17), so the stack render and the tests build the same thing.

No API key goes on this command line. The router forwards the client's
``Authorization`` header to the replica it picks, and each replica checks it
(``VLLM_API_KEY``), so a request without our key gets the replica's 401 through the
router. The router's own ``--api-key`` is only for its intra-node data-parallel mode;
passing it would also show the secret in ``ps``. The router's own routes
(``/workers``, ``/add_worker``, ``/remove_worker``, ``/flush_cache``) answer without any
key: keep the router on the loopback or an internal network, behind the front door.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# The policies that work with a plain list of worker URLs. The router also has kv_aware
# (needs the replicas' ZMQ KV event streams) and sticky_least_loaded; neither is offered
# until it is checked against our replicas.
POLICIES = ("cache_aware", "round_robin", "power_of_two", "consistent_hash", "random")
DEFAULT_POLICY = "cache_aware"
DEFAULT_BINARY = "vllm-router"


class RouterConfigError(ValueError):
    """A router setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class RouterSettings:
    """What the router needs besides its workers. Defaults: docs/scale-out.md says why."""

    port: int = 8000
    host: str = "127.0.0.1"
    policy: str = DEFAULT_POLICY
    # cache_aware only: balance by load once the in-flight gap between replicas is over this
    # (and over 1.5 times); None keeps the router's 64, which at low concurrency leaves
    # most new conversations on the first replica (docs/scale-out.md).
    balance_abs_threshold: int | None = None
    # The router's own Prometheus endpoint (vllm_router_* metrics). Always given: the
    # router listens on 29000 when it is not.
    prometheus_port: int = 29000
    prometheus_host: str = "127.0.0.1"
    # The router's default checks a replica every 60 s and drops it after 3 failures
    # (3 minutes of a dead replica in rotation); 5 s and 2 failures: gone in ~10 s.
    health_check_interval_s: int = 5
    health_check_timeout_s: int = 3
    health_failure_threshold: int = 2
    health_success_threshold: int = 2
    health_check_endpoint: str = "/health"
    # Attempts per request, the first included (the router's --retry-max-retries: its
    # --disable-retries is the same as 1). A request that failed on a replica that died is
    # tried again on another.
    retry_max_attempts: int = 3
    # Long reasoning answers stream for minutes: the router's default (1800 s) is kept.
    request_timeout_s: int = 1800
    # How long the router waits at start for every replica to be healthy (vLLM loads the
    # model first: minutes on a cold start).
    worker_startup_timeout_s: int = 600
    log_level: str = "info"
    binary: str = DEFAULT_BINARY


def normalise_worker_url(url: str) -> str:
    """``http(s)://host:port`` with no path, lower-case scheme and host, no trailing slash;
    RouterConfigError when it is not a replica's base URL."""
    if not isinstance(url, str) or not url.strip():
        raise RouterConfigError(f"worker URL {url!r} is empty")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RouterConfigError(
            f"worker URL {url!r} is not http(s)://host:port (a replica's base URL)"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise RouterConfigError(f"worker URL {url!r} has a bad port: {exc}") from exc
    if port is None:
        raise RouterConfigError(f"worker URL {url!r} has no port (vLLM listens on one)")
    if parts.path.rstrip("/") or parts.query or parts.fragment or parts.username:
        raise RouterConfigError(
            f"worker URL {url!r} has a path, query or credentials: give the replica's base "
            "URL (the router adds /v1/... itself)"
        )
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}:{port}"


def _check_port(name: str, port: object) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RouterConfigError(f"{name} {port!r} is not a TCP port (1-65535)")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RouterConfigError(f"{name} {value!r} must be a whole number of at least 1")


def router_command(workers: Sequence[str], settings: RouterSettings | None = None) -> list[str]:
    """The argv that runs the router in front of ``workers`` (replica base URLs)."""
    settings = settings or RouterSettings()
    if isinstance(workers, str):
        raise RouterConfigError("workers must be a list of URLs, not one string")
    if not workers:
        raise RouterConfigError("no workers: the router needs at least one vLLM replica")
    urls = [normalise_worker_url(url) for url in workers]
    seen: dict[str, str] = {}
    for given, url in zip(workers, urls, strict=True):
        if url in seen:
            raise RouterConfigError(
                f"worker {given!r} is listed twice (also as {seen[url]!r}): each replica "
                "once, or the router counts one replica as two"
            )
        seen[url] = given
    if settings.policy not in POLICIES:
        raise RouterConfigError(
            f"unknown policy {settings.policy!r}; one of: {', '.join(POLICIES)}"
        )
    if settings.balance_abs_threshold is not None:
        if settings.policy != "cache_aware":
            raise RouterConfigError(
                f"balance_abs_threshold is cache_aware's; the policy is {settings.policy!r}"
            )
        threshold = settings.balance_abs_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise RouterConfigError(f"balance_abs_threshold {threshold!r} must be 0 or more")
    _check_port("port", settings.port)
    _check_port("prometheus_port", settings.prometheus_port)
    if settings.prometheus_port == settings.port:
        raise RouterConfigError(f"prometheus_port {settings.prometheus_port} is the router's port")
    for name in (
        "health_check_interval_s",
        "health_check_timeout_s",
        "health_failure_threshold",
        "health_success_threshold",
        "request_timeout_s",
        "worker_startup_timeout_s",
        "retry_max_attempts",
    ):
        _check_positive(name, getattr(settings, name))
    if not settings.health_check_endpoint.startswith("/"):
        raise RouterConfigError(
            f"health_check_endpoint {settings.health_check_endpoint!r} must start with /"
        )

    argv = [
        settings.binary,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--worker-urls",
        *urls,
        "--policy",
        settings.policy,
        "--health-check-endpoint",
        settings.health_check_endpoint,
        "--health-check-interval-secs",
        str(settings.health_check_interval_s),
        "--health-check-timeout-secs",
        str(settings.health_check_timeout_s),
        "--health-failure-threshold",
        str(settings.health_failure_threshold),
        "--health-success-threshold",
        str(settings.health_success_threshold),
        "--request-timeout-secs",
        str(settings.request_timeout_s),
        "--worker-startup-timeout-secs",
        str(settings.worker_startup_timeout_s),
        "--retry-max-retries",
        str(settings.retry_max_attempts),
        "--prometheus-host",
        settings.prometheus_host,
        "--prometheus-port",
        str(settings.prometheus_port),
        "--log-level",
        settings.log_level,
    ]
    if settings.balance_abs_threshold is not None:
        argv += ["--balance-abs-threshold", str(settings.balance_abs_threshold)]
    return argv
