"""Where `r1deploy top`'s figures come from: the services of a stack directory and a Source.

``targets`` reads the services from settings.json as `r1deploy doctor` and the smoke do:
the model server at ``vllm.url`` and the tool gateway at ``gateway.url`` (when
``gateway.enabled``), both the inside URLs a host reaches on loopback, never the front door
(which hides ``/metrics``).

A Source is anything with ``frame() -> Frame``. ``DirectSource`` GETs each service's
``/metrics`` and keeps the last scrape to compute rates against. ``PrometheusSource`` asks a
Prometheus server (``--prometheus URL``, or settings.json ``monitoring.prometheus_url``) for
the same figures with ``rate()`` and ``histogram_quantile()``, one model server per scraped
replica (``instance`` of ``job="vllm"``, as the alert rules expect) and one gateway per
instance exporting the gateway's series, and returns the same Frame.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from r1deploy.monitoring import prometheus
from r1deploy.monitoring.prometheus import PrometheusAPIError, describe
from r1deploy.stackdir import StackDir
from r1deploy.top import figures
from r1deploy.top.figures import (
    Frame,
    GatewayView,
    ModelServerView,
    Scrape,
    ToolRow,
    gateway_view,
    model_server_view,
    parse,
)

MODEL_SERVER = "model_server"
GATEWAY = "gateway"
# The model server's key in .env: vLLM's covers /v1/* only, llama.cpp's server asks for it
# on every route, /metrics included (LLAMA_API_KEY is set from it).
MODEL_SERVER_KEY_ENV = "VLLM_API_KEY"


@dataclass(frozen=True)
class Target:
    kind: str  # MODEL_SERVER or GATEWAY
    name: str  # the service's name (compose service; the native runtime's)
    url: str  # base URL, without /metrics
    engine: str = ""  # model servers: vllm or llama_cpp (settings.json engine)
    key_env: str | None = None  # the .env variable whose value is sent as a bearer key


def targets(stack: StackDir) -> list[Target]:
    """The stack's model server and tool gateway, from settings.json."""
    settings = stack.settings
    found = []
    vllm = settings.get("vllm") or {}
    if vllm.get("url"):
        # The native runtime runs the model server as its service `vllm` in either profile.
        native = settings.get("runtime") == "native"
        name = "vllm" if native else vllm.get("service", "vllm")
        engine = settings.get("engine") or vllm.get("server") or "vllm"
        url = vllm["url"].rstrip("/")
        found.append(Target(MODEL_SERVER, name, url, engine, MODEL_SERVER_KEY_ENV))
    gateway = settings.get("gateway") or {}
    if gateway.get("enabled") and gateway.get("url"):
        name = gateway.get("service", "tools-gateway")
        found.append(Target(GATEWAY, name, gateway["url"].rstrip("/")))
    return found


class Source(Protocol):
    name: str

    def frame(self) -> Frame: ...


def _now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class DirectSource:
    """Each target's /metrics, read at every frame; rates against the frame before."""

    name = "direct"

    def __init__(
        self,
        found: list[Target],
        env: dict[str, str],
        *,
        timeout_s: float = 2.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = _now_iso,
    ):
        self.targets = found
        self.env = env
        self.timeout_s = timeout_s
        self.http = http or httpx.Client(follow_redirects=True)
        self.clock = clock
        self.wall_clock = wall_clock
        self.previous: dict[Target, Scrape] = {}

    def scrape(self, target: Target) -> Scrape:
        url = f"{target.url}/metrics"
        key = self.env.get(target.key_env) if target.key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = self.http.get(url, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return Scrape(self.clock(), error=f"{url}: {describe(exc)}")
        at = self.clock()
        if response.status_code != 200:
            error = f"{url}: HTTP {response.status_code}"
            if response.status_code in (401, 403) and target.key_env:
                error += (
                    f" (the key .env {target.key_env} was refused)"
                    if key
                    else f" (it asks for a key: .env has no {target.key_env})"
                )
            return Scrape(at, error=error)
        scrape = parse(response.text, at)
        if not scrape.ok:
            return Scrape(at, error=f"{url}: {scrape.error}")
        return scrape

    def frame(self) -> Frame:
        model_servers, gateways = [], []
        for target in self.targets:
            now = self.scrape(target)
            before = self.previous.get(target)
            if target.kind == MODEL_SERVER:
                view = model_server_view(target.name, target.url, target.engine, before, now)
                model_servers.append(view)
            else:
                gateways.append(gateway_view(target.name, target.url, before, now))
            self.previous[target] = now
        return Frame(self.wall_clock(), self.name, model_servers, gateways)

    def close(self) -> None:
        self.http.close()


# ------------------------------------------------------------------ Prometheus


def prometheus_url(stack: StackDir) -> str | None:
    """settings.json ``monitoring.prometheus_url``, where the stack's settings name one."""
    monitoring = stack.settings.get("monitoring") or {}
    url = monitoring.get("prometheus_url") if isinstance(monitoring, dict) else None
    return url.rstrip("/") if isinstance(url, str) and url.strip() else None


class PrometheusError(RuntimeError):
    """Prometheus could not be asked: its URL, what went wrong and what to do."""


# The scrape job of the model servers (monitoring/rules/r1deploy.rules.yml expects it).
VLLM_JOB = 'job="vllm"'
# The figure each series of the frame's one query answers, as its label FIGURE.
FIGURE = "r1deploy_figure"
# Rates and TTFT percentiles over this window; more than two scrapes at 15 s or 30 s.
WINDOW_S = 60


def _any_of(names: tuple[str, ...] | str, selector: str) -> str:
    """A selector of whichever of figures.py's names a server exports (first found there;
    here: an engine exports one of them)."""
    names = (names,) if isinstance(names, str) else names
    return f'{{__name__=~"{"|".join(names)}", {selector}}}'


def frame_queries(window_s: int = WINDOW_S) -> dict[str, str]:
    """figure -> PromQL. The metric names are figures.py's, so both sources read the same."""
    window = f"[{window_s}s]"
    ttft = f"{figures.TTFT[0]}_bucket{{{VLLM_JOB}}}"
    gateway_jobs = f"last_over_time({figures.GATEWAY_IN_FLIGHT}[1h])"
    return {
        "up": f"up{{{VLLM_JOB}}}",
        "running": f"sum by (instance) ({_any_of(figures.RUNNING, VLLM_JOB)})",
        "waiting": f"sum by (instance) ({_any_of(figures.WAITING, VLLM_JOB)})",
        "kv_cache": f"max by (instance) ({_any_of(figures.KV_CACHE, VLLM_JOB)})",
        "generated": f"sum by (instance) (rate({_any_of(figures.GENERATED, VLLM_JOB)}{window}))",
        "ttft_p50": f"histogram_quantile(0.5, sum by (instance, le) (rate({ttft}{window})))",
        "ttft_p95": f"histogram_quantile(0.95, sum by (instance, le) (rate({ttft}{window})))",
        "ttft_p50_all": f"histogram_quantile(0.5, sum by (instance, le) ({ttft}))",
        "ttft_p95_all": f"histogram_quantile(0.95, sum by (instance, le) ({ttft}))",
        "finished": f"sum by (instance, finished_reason) ({figures.FINISHED}{{{VLLM_JOB}}})",
        "http_5xx": f'sum by (instance) ({figures.HTTP_REQUESTS}{{{VLLM_JOB}, status="5xx"}})',
        # Every target of a job that exported the gateway's series in the last hour: one
        # that is down now is still listed, with up 0.
        "gateway_up": f"up and on (job) {gateway_jobs}",
        "calls": f"sum by (instance, tool, outcome) ({figures.GATEWAY_CALLS})",
        "calls_rate": f"sum by (instance, tool) (rate({figures.GATEWAY_CALLS}{window}))",
        "in_flight": f"sum by (instance, tool) ({figures.GATEWAY_IN_FLIGHT})",
    }


def frame_query(window_s: int = WINDOW_S) -> str:
    """Every figure in one query (one round trip, one evaluation time): each part's series
    labelled with its figure."""
    return " or ".join(
        f'label_replace({expr}, "{FIGURE}", "{figure}", "", "")'
        for figure, expr in frame_queries(window_s).items()
    )


Series = list[tuple[dict[str, str], float]]


def _value(raw) -> float | None:
    try:
        value = float(raw[1])
    except (TypeError, ValueError, IndexError):
        return None
    return None if math.isnan(value) else value


def _by_figure(result: list) -> dict[str, Series]:
    found: dict[str, Series] = {}
    for series in result:
        labels = dict(series.get("metric") or {})
        figure = labels.pop(FIGURE, "")
        value = _value(series.get("value"))
        if value is not None:
            found.setdefault(figure, []).append((labels, value))
    return found


def _per_instance(series: Series) -> dict[str, float]:
    return {labels.get("instance", ""): value for labels, value in series}


def model_server_views(found: dict[str, Series], window_s: float) -> list[ModelServerView]:
    """One view per vLLM replica Prometheus scrapes, its figures from ``found``."""
    up = _per_instance(found.get("up", []))
    per: dict[str, dict[str, float]] = {
        figure: _per_instance(found.get(figure, []))
        for figure in ("running", "waiting", "kv_cache", "generated", "http_5xx")
        + ("ttft_p50", "ttft_p95", "ttft_p50_all", "ttft_p95_all")
    }
    views = []
    for instance in sorted(up):
        if not up[instance]:
            error = "Prometheus's last scrape of its /metrics failed (up == 0)"
            views.append(ModelServerView(instance, instance, "", up=False, error=error))
            continue
        view = ModelServerView(instance, instance, "", up=True, window_s=float(window_s))
        view.running = per["running"].get(instance)
        view.waiting = per["waiting"].get(instance)
        kv = per["kv_cache"].get(instance)
        view.kv_cache_pct = None if kv is None else kv * 100
        view.generation_tokens_per_s = per["generated"].get(instance)
        if instance in per["ttft_p50"]:
            view.ttft_over = "window"
            view.ttft_p50_s, view.ttft_p95_s = (per[f][instance] for f in ("ttft_p50", "ttft_p95"))
        elif instance in per["ttft_p50_all"]:
            view.ttft_over = "since start"
            view.ttft_p50_s = per["ttft_p50_all"][instance]
            view.ttft_p95_s = per["ttft_p95_all"].get(instance)
        reasons = {
            labels.get("finished_reason", ""): value
            for labels, value in found.get("finished", [])
            if labels.get("instance") == instance
        }
        if reasons:
            answered = (v for r, v in reasons.items() if r not in figures.NOT_ANSWERED)
            view.requests_ok = math.fsum(answered)
            view.requests_aborted = reasons.get("abort", 0.0)
            view.requests_error = reasons.get("error", 0.0)
        view.http_5xx = per["http_5xx"].get(instance)
        views.append(view)
    return views


def gateway_views(found: dict[str, Series], window_s: float) -> list[GatewayView]:
    """One view per instance that exports the gateway's series."""
    up = _per_instance(found.get("gateway_up", []))
    calls: dict[str, dict[str, dict[str, float]]] = {}
    for labels, value in found.get("calls", []):
        tools = calls.setdefault(labels.get("instance", ""), {})
        tools.setdefault(labels.get("tool", ""), {})[labels.get("outcome", "")] = value
    rates = {
        (lb.get("instance", ""), lb.get("tool", "")): v for lb, v in found.get("calls_rate", [])
    }
    in_flight = {
        (lb.get("instance", ""), lb.get("tool", "")): v for lb, v in found.get("in_flight", [])
    }
    views = []
    for instance in sorted(set(up) | set(calls)):
        if not up.get(instance, 1.0):
            error = "Prometheus's last scrape of its /metrics failed (up == 0)"
            views.append(GatewayView(instance, instance, up=False, error=error))
            continue
        view = GatewayView(instance, instance, up=True, window_s=float(window_s))
        tools = calls.get(instance, {})
        names = set(tools) | {tool for i, tool in in_flight if i == instance}
        for tool in sorted(names):
            key = (instance, tool)
            view.tools.append(
                ToolRow(tool, in_flight.get(key), rates.get(key), tools.get(tool, {}))
            )
        views.append(view)
    return views


class PrometheusSource:
    """The figures as a Prometheus server has them: every replica it scrapes."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout_s: float = 2.0,
        window_s: int = WINDOW_S,
        http: httpx.Client | None = None,
        wall_clock: Callable[[], str] = _now_iso,
    ):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.window_s = window_s
        self.http = http or prometheus.client(auth=auth)
        self.wall_clock = wall_clock

    def query(self, promql: str) -> list:
        """The result of an instant query (/api/v1/query), or PrometheusError."""
        try:
            return prometheus.instant_query(self.http, self.url, promql, timeout_s=self.timeout_s)
        except PrometheusAPIError as exc:
            raise PrometheusError(self._message(exc)) from None

    def _message(self, exc: PrometheusAPIError) -> str:
        fix = (
            "check the URL (--prometheus, or settings.json monitoring.prometheus_url) and "
            "that Prometheus runs, or give --direct to read each service's /metrics"
        )
        if exc.kind == prometheus.UNREACHABLE:
            return f"Prometheus at {self.url}: {exc.reason}; {fix}"
        if exc.kind == prometheus.REFUSED:
            return (
                f"Prometheus at {self.url}: HTTP {exc.status_code}, it asks for a user "
                "and password: give --prometheus-password-file FILE (or the environment "
                "variable R1DEPLOY_PROMETHEUS_PASSWORD) and --prometheus-user if not ops"
            )
        if exc.kind == prometheus.NOT_API:
            return f"{exc}; {fix}"
        return str(exc)

    def frame(self) -> Frame:
        found = _by_figure(self.query(frame_query(self.window_s)))
        return Frame(
            self.wall_clock(),
            self.name,
            model_server_views(found, self.window_s),
            gateway_views(found, self.window_s),
            source_url=self.url,
        )

    def close(self) -> None:
        self.http.close()
