"""The load generator: streamed chat completions over one aiohttp session.

Timing follows `vllm bench serve` (see ``metrics``). The client measures its own cost while it
runs (CPU time, event-loop lag, time spent parsing), so a saturated client shows in the result
instead of passing for a slow server.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# aiohttp, not the httpx the rest of the package uses: the load generator must sustain ten
# times the rate of the server it measures, and httpx's async client streams about 7x fewer
# requests a second on the same core (`make bench`, tests/bench/http_clients.py: ~2,000 vs
# ~300 req/s against the instant stub at concurrency 32).
import aiohttp

from r1deploy import modelserver
from r1deploy.bench.metrics import RequestResult, compute_metrics, summarize
from r1deploy.bench.sse import DONE, SSEParser
from r1deploy.bench.target import Target

# After this many failures in a row with the level still failing, stop sending: the server is
# down or refusing, and hammering it adds nothing.
ABORT_AFTER_CONSECUTIVE_FAILURES = 20
LOOP_LAG_INTERVAL_S = 0.02  # 50 wake-ups a second: cheap, still resolves lag


@dataclass
class LoadSettings:
    output_len: int
    ignore_eos: bool = True
    num_prompts: int = 100
    concurrency: int | None = None  # None: no cap
    request_rate: float = math.inf  # requests/s, Poisson arrivals; inf: all at once
    warmup: int = 0
    max_seconds: float | None = None
    temperature: float | None = None
    request_timeout_s: float = 300.0
    seed: int = 0
    percentiles: tuple[float, ...] = (50.0, 90.0, 99.0)
    goodput_slos_ms: dict[str, float] = field(default_factory=dict)
    min_tokens: bool = False


def request_body(target: Target, prompt: str, settings: LoadSettings) -> dict:
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": settings.output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if settings.ignore_eos:
        # Fixed output length: R1's reasoning length varies per prompt, so let it not stop.
        body["ignore_eos"] = True
        if settings.min_tokens:
            body["min_tokens"] = settings.output_len
    if settings.temperature is not None:
        body["temperature"] = settings.temperature
    return body


def _error_text(status: int, text: str) -> str:
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error", data)
            message = err.get("message") if isinstance(err, dict) else err
            if message:
                return f"HTTP {status}: {str(message)[:300]}"
    except json.JSONDecodeError:
        pass
    return f"HTTP {status}: {text.strip()[:300] or 'empty body'}"


class ParseClock:
    """Time the client spends parsing streams (its share of the per-token cost)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.events = 0


async def stream_chat(
    session: aiohttp.ClientSession,
    target: Target,
    prompt: str,
    settings: LoadSettings,
    clock: ParseClock | None = None,
) -> RequestResult:
    """Send one streamed chat completion and time it."""
    result = RequestResult()
    body = request_body(target, prompt, settings)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=settings.request_timeout_s)
    clock = clock or ParseClock()
    result.start = start = time.perf_counter()
    last = start
    seen_done = False
    try:
        headers = target.headers() | modelserver.stream_headers(target.extra.get("server_kind", ""))
        async with session.post(
            target.chat_url, json=body, headers=headers, timeout=timeout
        ) as response:
            result.http_status = response.status
            if response.status != 200:
                result.error = _error_text(response.status, await response.text())
                return result
            parser = SSEParser()
            async for data in response.content.iter_any():
                read_at = time.perf_counter()
                for event in parser.feed(data):
                    if event == DONE:
                        seen_done = True
                        continue
                    # Stamped per event, as `vllm bench serve` does: events that arrive in one
                    # read get gaps of microseconds (their parse time), not exactly zero.
                    now = time.perf_counter()
                    chunk = json.loads(event)
                    if chunk.get("choices"):
                        if result.ttft is None:
                            result.ttft = now - start
                        else:
                            result.itl.append(now - last)
                        last = now
                    elif chunk.get("error"):
                        err = chunk["error"]
                        message = err.get("message") if isinstance(err, dict) else err
                        result.error = f"error event mid-stream: {str(message)[:300]}"
                        return result
                    if usage := chunk.get("usage"):
                        result.output_tokens = usage.get("completion_tokens")
                        result.prompt_tokens = usage.get("prompt_tokens")
                clock.seconds += time.perf_counter() - read_at
                clock.events += 1
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return result
    except (json.JSONDecodeError, AttributeError) as exc:
        result.error = f"malformed stream event: {exc}"
        return result
    if result.ttft is None:
        result.error = "the stream carried no completion chunk"
    elif not seen_done:
        result.error = f"the stream ended before [DONE] after {len(result.itl) + 1} chunks"
    else:
        result.success = True
        result.latency = last - start
    return result


class LoopLagMonitor:
    """How late the event loop wakes a 20 ms sleeper: the client's own queueing delay."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.lags.append(max(0.0, time.perf_counter() - before - LOOP_LAG_INTERVAL_S))

    def __enter__(self) -> LoopLagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()


def arrival_offsets(count: int, rate: float, seed: int) -> list[float]:
    """Poisson arrival times (s from start), rescaled so the last is at ``count / rate``
    as `vllm bench serve` does, so runs with different seeds send at the same mean rate."""
    if math.isinf(rate):
        return [0.0] * count
    rng = random.Random(seed)
    offsets, total = [], 0.0
    for _ in range(count):
        total += rng.expovariate(rate)
        offsets.append(total)
    scale = (count / rate) / offsets[-1]
    return [offset * scale for offset in offsets]


@dataclass
class Progress:
    sent: int = 0
    done: int = 0
    failed: int = 0
    output_tokens: int = 0
    started: float = 0.0


async def run_level(
    session: aiohttp.ClientSession,
    target: Target,
    prompts: list[str],
    warmup_prompts: list[str],
    settings: LoadSettings,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict:
    """One level of the sweep: warm-up, then ``prompts`` at the settings' concurrency/rate."""
    level: dict = {
        "concurrency": settings.concurrency,
        "request_rate": None if math.isinf(settings.request_rate) else settings.request_rate,
        "num_prompts": len(prompts),
        "partial_reasons": [],
    }
    limit = asyncio.Semaphore(settings.concurrency or len(prompts) or 1)

    if warmup_prompts:

        async def warm(prompt: str) -> RequestResult:
            async with limit:
                return await stream_chat(session, target, prompt, settings)

        warm_results = await asyncio.gather(*(warm(p) for p in warmup_prompts))
        level["warmup"] = {
            "requests": len(warm_results),
            "failed": sum(not r.success for r in warm_results),
        }
        if not any(r.success for r in warm_results):
            level["partial_reasons"].append(
                f"every warm-up request failed ({warm_results[0].error}); level not run"
            )
            level.update(
                sent=0,
                metrics=compute_metrics([], 0.0, settings.percentiles, settings.goodput_slos_ms),
                errors=_error_counts(warm_results),
                status="partial",
            )
            return level

    progress = Progress()
    clock = ParseClock()
    stop_sending = asyncio.Event()
    stop_reason: list[str] = []
    consecutive_failures = 0
    results: list[RequestResult] = []
    offsets = arrival_offsets(len(prompts), settings.request_rate, settings.seed)

    async def one(prompt: str, deadline: float | None) -> RequestResult | None:
        nonlocal consecutive_failures
        async with limit:
            if stop_sending.is_set():
                return None
            if deadline is not None and time.perf_counter() >= deadline:
                if not stop_reason:
                    stop_reason.append("max_seconds")
                stop_sending.set()
                return None
            progress.sent += 1
            result = await stream_chat(session, target, prompt, settings, clock)
        results.append(result)
        progress.done += 1
        if result.success:
            consecutive_failures = 0
            progress.output_tokens += result.output_tokens or 0
        else:
            progress.failed += 1
            consecutive_failures += 1
            too_many = consecutive_failures >= ABORT_AFTER_CONSECUTIVE_FAILURES
            if too_many and not stop_sending.is_set():
                stop_reason.append(
                    f"aborted after {consecutive_failures} failed requests in a row "
                    f"(last: {result.error})"
                )
                stop_sending.set()
        return result

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5)
            on_progress(progress)

    cpu_before = time.process_time()
    with LoopLagMonitor() as lag:
        reporter = asyncio.create_task(report()) if on_progress else None
        progress.started = start = time.perf_counter()
        deadline = start + settings.max_seconds if settings.max_seconds else None
        tasks = []
        try:
            for prompt, offset in zip(prompts, offsets, strict=True):
                delay = start + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop_sending.is_set() or (deadline and time.perf_counter() >= deadline):
                    if not stop_reason:
                        stop_reason.append("max_seconds")
                    break
                tasks.append(asyncio.create_task(one(prompt, deadline)))
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Ctrl-C: keep what finished, mark the level partial, let the caller stop the sweep.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stop_reason.append("interrupted")
        finally:
            if reporter:
                reporter.cancel()
        duration = time.perf_counter() - start
    cpu = time.process_time() - cpu_before

    if on_progress:
        on_progress(progress)
    metrics = compute_metrics(results, duration, settings.percentiles, settings.goodput_slos_ms)
    level["sent"] = progress.sent
    level["metrics"] = metrics
    level["errors"] = _error_counts(results)
    if settings.ignore_eos:
        wrong = sum(
            1
            for r in results
            if r.success and r.output_tokens is not None and r.output_tokens != settings.output_len
        )
        level["output_len_mismatch"] = wrong
        if wrong:
            level["partial_reasons"].append(
                f"{wrong} requests returned a different number of tokens than "
                f"--output-len {settings.output_len} (the server ignored ignore_eos? "
                "try --min-tokens)"
            )
    bounded_by = stop_reason[0] if stop_reason else "num_prompts"
    level["bounded_by"] = bounded_by if bounded_by in ("max_seconds", "num_prompts") else "aborted"
    if bounded_by not in ("max_seconds", "num_prompts"):
        level["partial_reasons"].append(bounded_by)
    if metrics["failed"]:
        level["partial_reasons"].append(f"{metrics['failed']} of {progress.sent} requests failed")
    if metrics["usage_missing"]:
        level["partial_reasons"].append(
            f"{metrics['usage_missing']} responses carried no usage (token counts unknown)"
        )
    level["status"] = "partial" if level["partial_reasons"] else "complete"
    level["client_overhead"] = {
        "cpu_seconds": cpu,
        "cpu_fraction_of_one_core": cpu / duration if duration > 0 else None,
        # Requests the client could drive per second of one core: its rate ceiling when the
        # server costs nothing and the host is not shared.
        "cpu_ms_per_request": cpu / progress.done * 1000 if progress.done else None,
        "requests_per_cpu_second": progress.done / cpu if cpu > 0 else None,
        "loop_lag": summarize(lag.lags, (99.0,)),
        "parse_us_per_read": clock.seconds / clock.events * 1e6 if clock.events else None,
    }
    return level


def _error_counts(results: list[RequestResult]) -> list[dict]:
    counts = Counter(r.error for r in results if not r.success)
    return [{"error": error, "count": n} for error, n in counts.most_common(5)]
