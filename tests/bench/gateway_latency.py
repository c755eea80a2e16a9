"""Benchmark: the tool gateway's added latency and its throughput at 32 concurrent callers.

The real gateway process (`r1deploy serve-tools`, uvicorn) in front of a local stub
upstream on loopback. Added latency = a call through the gateway minus the same call made
directly to the upstream (p50 and p99 over interleaved sequential calls; target under
5 ms at p50). Throughput: 32 callers with their own connections, calls through the gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.processes import start_gateway
from tests.support.stub_upstream import StubUpstream

KEY = "bench-gateway-key-0123456789abcdef"  # the gateway needs 32 characters or more
SEQUENTIAL_CALLS = 400
WARMUP_CALLS = 50
CONCURRENCY = 32
CONCURRENT_CALLS = 3200
TARGET_P50_MS = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def tools(stub_url: str) -> list[dict]:
    return [
        {
            "id": "echo_tool",
            "name": "echo",
            "description": "Echo the request (bench).",
            "params": {
                "type": "object",
                "properties": {"item": {"type": "string", "description": "item"}},
                "required": ["item"],
                "additionalProperties": False,
            },
            "url": f"{stub_url}/echo/{{item}}",
            "method": "GET",
            "allow_private_network": True,
        }
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): load-independent cost per call."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(gateway_url: str, stub_url: str) -> tuple[list[float], list[float]]:
    direct_ms, via_ms = [], []
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client() as direct, httpx.Client(headers=headers) as via:
        for index in range(WARMUP_CALLS + SEQUENTIAL_CALLS):
            item = f"item{index}"
            start = time.perf_counter()
            direct.get(f"{stub_url}/echo/{item}").raise_for_status()
            middle = time.perf_counter()
            via.post(f"{gateway_url}/tools/echo", json={"item": item}).raise_for_status()
            end = time.perf_counter()
            if index >= WARMUP_CALLS:
                direct_ms.append((middle - start) * 1000)
                via_ms.append((end - middle) * 1000)
    return direct_ms, via_ms


async def concurrent(url: str, body_for, headers: dict, method: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_caller = CONCURRENT_CALLS // CONCURRENCY

    async def caller(number: int) -> None:
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            for index in range(per_caller):
                start = time.perf_counter()
                response = await client.request(method, url(number, index), json=body_for(index))
                response.raise_for_status()
                latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(CONCURRENCY)))
    return per_caller * CONCURRENCY / (time.perf_counter() - start), latencies


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="r1deploy-bench-gateway-"))
    with StubUpstream() as stub:
        tools_file = work / "tools.json"
        tools_file.write_text(json.dumps(tools(stub.url)))

        gateway, port = start_gateway(tools_file, work, {"TOOLS_GATEWAY_KEY": KEY})
        with gateway:
            gateway_url = f"http://127.0.0.1:{port}"
            cpu_before = cpu_seconds(gateway.process.pid)
            direct_ms, via_ms = sequential(gateway_url, stub.url)
            cpu_per_call_ms = (
                (cpu_seconds(gateway.process.pid) - cpu_before)
                * 1000
                / (WARMUP_CALLS + SEQUENTIAL_CALLS)
            )
            via_rps, via_lat = asyncio.run(
                concurrent(
                    lambda n, i: f"{gateway_url}/tools/echo",
                    lambda i: {"item": f"i{i}"},
                    {"Authorization": f"Bearer {KEY}"},
                    "POST",
                )
            )
            direct_rps, direct_lat = asyncio.run(
                concurrent(lambda n, i: f"{stub.url}/echo/i{i}", lambda i: None, {}, "GET")
            )
    added_p50 = statistics.median(via_ms) - statistics.median(direct_ms)
    added_p99 = percentile(via_ms, 99) - percentile(direct_ms, 99)
    load = os.getloadavg()[0]
    print(
        f"gateway added latency over a direct loopback call ({SEQUENTIAL_CALLS} sequential "
        f"calls, load average {load:.1f} on {os.cpu_count()} CPUs):"
    )
    print(
        f"  direct   p50 {statistics.median(direct_ms):6.2f} ms   p99 "
        f"{percentile(direct_ms, 99):6.2f} ms"
    )
    print(
        f"  gateway  p50 {statistics.median(via_ms):6.2f} ms   p99 {percentile(via_ms, 99):6.2f} ms"
    )
    verdict = "meets" if added_p50 < TARGET_P50_MS else "MISSES"
    print(
        f"  added    p50 {added_p50:6.2f} ms   p99 {added_p99:6.2f} ms   "
        f"({verdict} the {TARGET_P50_MS:g} ms p50 target)"
    )
    print(f"  gateway CPU per call {cpu_per_call_ms:.2f} ms (its own work, whatever the load)")
    print(f"throughput at {CONCURRENCY} concurrent callers ({CONCURRENT_CALLS} calls):")
    print(
        f"  gateway  {via_rps:7.0f} calls/s   p50 {statistics.median(via_lat):6.1f} ms   "
        f"p99 {percentile(via_lat, 99):6.1f} ms"
    )
    print(
        f"  direct   {direct_rps:7.0f} calls/s   p50 {statistics.median(direct_lat):6.1f} ms   "
        f"p99 {percentile(direct_lat, 99):6.1f} ms (the stub alone)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
