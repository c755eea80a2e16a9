"""What `r1deploy top` shows, computed from two scrapes of a service's ``/metrics``.

Pure functions: a ``Scrape`` is one parsed exposition (prometheus-client's parser) and the
monotonic time it was read; a view is made from the scrape before (or None, the first time)
and the scrape now. A figure whose metric the server does not export is None, shown "n/a":
llama.cpp's server has no TTFT histogram, no request counter and, in the pinned build, no
KV cache figure.

Rates are the increase between the two scrapes over the seconds between them (a counter
that went down was reset: its value now is the increase, as Prometheus counts it). TTFT
percentiles interpolate within the histogram's buckets as Prometheus' histogram_quantile
does, over the buckets' increase between the scrapes; on the first frame, or when no request
got its first token in between, over the cumulative histogram ("since start").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Each figure's metric, first found wins: vLLM's name, its older one, llama.cpp's.
RUNNING = ("vllm:num_requests_running", "llamacpp:requests_processing")
WAITING = ("vllm:num_requests_waiting", "llamacpp:requests_deferred")
# All three are a fraction (1 is full), whatever "perc" says.
KV_CACHE = (
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "llamacpp:kv_cache_usage_ratio",
)
GENERATED = ("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total")
TTFT = ("vllm:time_to_first_token_seconds",)
# vLLM counts each finished request by finished_reason: stop, length, repetition (answered),
# abort (the client went away), error (an internal error, answered 500).
FINISHED = "vllm:request_success_total"
NOT_ANSWERED = ("abort", "error")
# vLLM's API server counts its HTTP answers by handler, method and status class.
HTTP_REQUESTS = "http_requests_total"
# The tool gateway's series (r1deploy/gateway/metrics.py).
GATEWAY_CALLS = "r1deploy_gateway_tool_calls_total"
GATEWAY_IN_FLIGHT = "r1deploy_gateway_calls_in_flight"

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass(frozen=True)
class Scrape:
    """One read of a ``/metrics``: its samples by name, or why there are none."""

    at: float  # monotonic seconds
    samples: Samples | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.samples is not None


def parse(text: str, at: float) -> Scrape:
    """The Prometheus text exposition ``text`` as a Scrape (an unreadable one: its error)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    except (ValueError, TypeError, IndexError) as exc:
        return Scrape(at, error=f"its /metrics is not Prometheus text ({exc})")
    return Scrape(at, samples)


def _name(scrape: Scrape, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in scrape.samples), None)


def _values(scrape: Scrape, name: str | None, **match: str) -> list[float] | None:
    if name is None or name not in scrape.samples:
        return None
    return [
        value
        for labels, value in scrape.samples[name]
        if all(labels.get(k) == v for k, v in match.items())
    ]


def total(scrape: Scrape, names: tuple[str, ...] | str, **match: str) -> float | None:
    """The sum over the series of the first of ``names`` exported (None: none is)."""
    names = (names,) if isinstance(names, str) else names
    values = _values(scrape, _name(scrape, names), **match)
    return None if values is None else math.fsum(values)


def highest(scrape: Scrape, names: tuple[str, ...]) -> float | None:
    values = _values(scrape, _name(scrape, names))
    return max(values) if values else None


def by_label(scrape: Scrape, name: str, label: str) -> dict[str, float]:
    """The series of ``name`` summed by the value of ``label``."""
    summed: dict[str, float] = {}
    for labels, value in scrape.samples.get(name, []):
        key = labels.get(label, "")
        summed[key] = summed.get(key, 0.0) + value
    return summed


def increase(before: float, now: float) -> float:
    """A counter's increase; one that went down was reset and counted again from 0."""
    return now - before if now >= before else now


def rate(before: Scrape | None, now: Scrape, names: tuple[str, ...]) -> float | None:
    """Per second, between the two scrapes; None on the first frame or without the metric."""
    if before is None or not before.ok or now.at <= before.at:
        return None
    name = _name(now, names)
    was, is_ = (total(before, name), total(now, name)) if name else (None, None)
    if was is None or is_ is None:
        return None
    return increase(was, is_) / (now.at - before.at)


def buckets(scrape: Scrape, names: tuple[str, ...]) -> list[tuple[float, float]] | None:
    """A histogram's cumulative buckets (upper bound, count), summed over its series."""
    found = _name(scrape, tuple(f"{n}_bucket" for n in names))
    if found is None:
        return None
    counts: dict[float, float] = {}
    for labels, value in scrape.samples[found]:
        upper = float(labels.get("le", "nan"))
        if not math.isnan(upper):
            counts[upper] = counts.get(upper, 0.0) + value
    return sorted(counts.items())


def bucket_increase(
    before: list[tuple[float, float]], now: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The buckets' increase; the cumulative ones when the histogram was reset."""
    was = dict(before)
    deltas = [(upper, count - was.get(upper, 0.0)) for upper, count in now]
    return now if any(d < 0 for _, d in deltas) else deltas


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in (the
    first bucket starts at 0; in the +Inf bucket, the highest finite bound)."""
    if not cumulative or not math.isinf(cumulative[-1][0]):
        return None
    count = cumulative[-1][1]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for index, (upper, at_or_below) in enumerate(cumulative):
        if at_or_below >= rank:
            if math.isinf(upper):
                return cumulative[index - 1][0] if index else None
            if index == 0 and upper <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / (at_or_below - below)
        lower, below = upper, at_or_below
    return None


@dataclass
class ModelServerView:
    """One model server's figures; None where its metrics do not say (shown n/a)."""

    name: str
    url: str
    engine: str
    up: bool
    error: str | None = None
    window_s: float | None = None  # seconds between the two scrapes the rates are over
    running: float | None = None
    waiting: float | None = None
    kv_cache_pct: float | None = None
    generation_tokens_per_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_over: str | None = None  # "window" (between the scrapes) or "since start"
    requests_ok: float | None = None
    requests_aborted: float | None = None
    requests_error: float | None = None
    http_5xx: float | None = None


@dataclass
class ToolRow:
    tool: str
    in_flight: float | None
    calls_per_s: float | None
    calls: dict[str, float]  # outcome -> count since the gateway started


@dataclass
class GatewayView:
    name: str
    url: str
    up: bool
    error: str | None = None
    window_s: float | None = None
    tools: list[ToolRow] = field(default_factory=list)


def _window(before: Scrape | None, now: Scrape) -> float | None:
    if before is None or not before.ok or now.at <= before.at:
        return None
    return now.at - before.at


def model_server_view(
    name: str, url: str, engine: str, before: Scrape | None, now: Scrape
) -> ModelServerView:
    if not now.ok:
        return ModelServerView(name, url, engine, up=False, error=now.error)
    view = ModelServerView(name, url, engine, up=True, window_s=_window(before, now))
    view.running = total(now, RUNNING)
    view.waiting = total(now, WAITING)
    kv = highest(now, KV_CACHE)
    view.kv_cache_pct = None if kv is None else kv * 100
    view.generation_tokens_per_s = rate(before, now, GENERATED)
    cumulative = buckets(now, TTFT)
    if cumulative is not None:
        hist, view.ttft_over = cumulative, "since start"
        earlier = buckets(before, TTFT) if view.window_s is not None else None
        if earlier is not None:
            delta = bucket_increase(earlier, cumulative)
            if delta and delta[-1][1] > 0:
                hist, view.ttft_over = delta, "window"
        view.ttft_p50_s = quantile(0.5, hist)
        view.ttft_p95_s = quantile(0.95, hist)
        if view.ttft_p50_s is None:
            view.ttft_over = None
    if FINISHED in now.samples:
        reasons = by_label(now, FINISHED, "finished_reason")
        view.requests_ok = math.fsum(v for r, v in reasons.items() if r not in NOT_ANSWERED)
        view.requests_aborted = reasons.get("abort", 0.0)
        view.requests_error = reasons.get("error", 0.0)
    view.http_5xx = total(now, HTTP_REQUESTS, status="5xx")
    return view


def gateway_view(name: str, url: str, before: Scrape | None, now: Scrape) -> GatewayView:
    if not now.ok:
        return GatewayView(name, url, up=False, error=now.error)
    view = GatewayView(name, url, up=True, window_s=_window(before, now))
    calls: dict[str, dict[str, float]] = {}
    for labels, value in now.samples.get(GATEWAY_CALLS, []):
        tool = calls.setdefault(labels.get("tool", ""), {})
        outcome = labels.get("outcome", "")
        tool[outcome] = tool.get(outcome, 0.0) + value
    in_flight = by_label(now, GATEWAY_IN_FLIGHT, "tool") if GATEWAY_IN_FLIGHT in now.samples else {}
    earlier = by_label(before, GATEWAY_CALLS, "tool") if view.window_s is not None else None
    for tool in sorted(set(calls) | set(in_flight)):
        outcomes = calls.get(tool, {})
        per_s = None
        if earlier is not None and tool in earlier:
            per_s = increase(earlier[tool], math.fsum(outcomes.values())) / view.window_s
        row = ToolRow(tool, in_flight.get(tool) if in_flight else None, per_s, outcomes)
        view.tools.append(row)
    return view


@dataclass
class Frame:
    """What one refresh shows: every model server and tool gateway of the stack."""

    taken_at: str  # wall clock, ISO 8601
    source: str  # where the figures come from: "direct" (/metrics) or "prometheus"
    model_servers: list[ModelServerView]
    gateways: list[GatewayView]
    source_url: str | None = None  # the Prometheus asked
