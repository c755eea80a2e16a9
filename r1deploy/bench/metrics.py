"""Per-request records and the benchmark metrics, defined exactly as `vllm bench serve` does.

Reference: ``vllm/benchmarks/serve.py`` ``calculate_metrics`` and
``vllm/benchmarks/lib/endpoint_request_func.py`` (vLLM 0.32):

- TTFT: send -> first stream chunk that carries ``choices`` (each chunk is stamped when it is
  parsed, so chunks that arrive in one network read are microseconds apart).
- ITL: the gaps between consecutive chunks that carry ``choices`` (one list over all requests).
- E2EL: send -> last chunk that carries ``choices`` (the trailing usage chunk and ``[DONE]``
  do not count).
- TPOT: per request ``(E2EL - TTFT) / (output_tokens - 1)``, only for requests with more than
  one output token; output tokens are the server's ``usage.completion_tokens``.
- Throughputs divide by the level's wall time (first send -> last completion).
- Percentiles interpolate linearly between ranks (numpy's default); std is the population std.
- Goodput: completed requests whose every SLO metric is <= its limit, per second; a request
  with one output token counts TPOT 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

METRIC_NAMES = ("ttft", "tpot", "itl", "e2el")
GOODPUT_METRICS = ("ttft", "tpot", "e2el")
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)


@dataclass
class RequestResult:
    """What one streamed request gave. Times are seconds (``time.perf_counter``)."""

    success: bool = False
    error: str = ""
    start: float = 0.0
    ttft: float | None = None
    latency: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int | None = None  # usage.completion_tokens; None when the server sent none
    prompt_tokens: int | None = None  # usage.prompt_tokens
    http_status: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile with linear interpolation between closest ranks (numpy default)."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values_s: list[float], percentiles: tuple[float, ...]) -> dict | None:
    """Mean, median, std and the percentiles of ``values_s``, in milliseconds; None if empty.

    None, not zero: a metric that could not be measured must not read as "instant".
    """
    if not values_s:
        return None
    n = len(values_s)
    mean = sum(values_s) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values_s) / n)
    summary = {
        "mean_ms": mean * 1000,
        "median_ms": percentile(values_s, 50) * 1000,
        "std_ms": std * 1000,
        "count": n,
    }
    for p in percentiles:
        summary[f"p{p:g}_ms"] = percentile(values_s, p) * 1000
    return summary


def parse_goodput(pairs: list[str]) -> dict[str, float]:
    """``["ttft:500", "tpot:50"]`` -> ``{"ttft": 500.0, "tpot": 50.0}`` (milliseconds)."""
    slos: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or name not in GOODPUT_METRICS:
            raise ValueError(
                f"--goodput {pair!r}: expected NAME:MILLISECONDS with NAME one of "
                f"{', '.join(GOODPUT_METRICS)} (e.g. --goodput ttft:500 tpot:50)"
            )
        try:
            limit = float(value)
        except ValueError:
            raise ValueError(
                f"--goodput {pair!r}: {value!r} is not a number of milliseconds"
            ) from None
        if limit <= 0:
            raise ValueError(f"--goodput {pair!r}: the limit must be > 0 ms")
        slos[name] = limit
    return slos


def compute_metrics(
    results: list[RequestResult],
    duration_s: float,
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
    goodput_slos_ms: dict[str, float] | None = None,
) -> dict:
    """The level's metrics from its request records (see the module docstring)."""
    ok = [r for r in results if r.success]
    failed = len(results) - len(ok)
    with_usage = [r for r in ok if r.output_tokens is not None]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    e2els = [r.latency for r in ok if r.latency is not None]
    itls = [gap for r in ok for gap in r.itl]
    tpots: list[float] = []
    tpots_for_goodput: list[float] = []
    for r in with_usage:
        tpot = 0.0
        if r.output_tokens > 1:
            tpot = (r.latency - r.ttft) / (r.output_tokens - 1)
            tpots.append(tpot)
        tpots_for_goodput.append(tpot)

    total_output = sum(r.output_tokens for r in with_usage)
    total_input = sum(r.prompt_tokens or 0 for r in ok)
    rate = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: None)

    good = None
    if goodput_slos_ms:
        good = 0
        for r in with_usage:
            tpot = 0.0 if r.output_tokens <= 1 else (r.latency - r.ttft) / (r.output_tokens - 1)
            observed = {"ttft": r.ttft, "tpot": tpot, "e2el": r.latency}
            if all(observed[name] * 1000 <= limit for name, limit in goodput_slos_ms.items()):
                good += 1

    return {
        "completed": len(ok),
        "failed": failed,
        "usage_missing": len(ok) - len(with_usage),
        "duration_s": duration_s,
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": rate(len(ok)) if ok else None,
        "request_goodput": rate(good) if good is not None and ok else None,
        "output_throughput": rate(total_output) if with_usage else None,
        "total_token_throughput": rate(total_input + total_output) if with_usage else None,
        "ttft": summarize(ttfts, percentiles),
        "tpot": summarize(tpots, percentiles),
        "itl": summarize(itls, percentiles),
        "e2el": summarize(e2els, percentiles),
    }
