"""`make bench`: why `r1deploy bench` keeps aiohttp while the rest of the package uses httpx.

The same streamed chat-completion loop (SSE lines counted) with each library against the
instant stub server (its own process), concurrency 32: what each client sustains on this
machine. The bench client must sustain ten times the request rate of the server it
measures; a GPU serving the 1.5B model answers hundreds of short requests a second.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request

import aiohttp
import httpx

from tests.bench.vllm_tiny import REPO
from tests.stubs.instant_openai import free_port

BODY = {
    "model": "stub-model",
    "messages": [{"role": "user", "content": "hello " * 120}],
    "max_tokens": 64,
    "stream": True,
    "ignore_eos": True,
}
REQUESTS, CONCURRENCY = 1200, 32


async def _aiohttp(url: str) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with gate, session.post(url, json=BODY) as response:
                async for line in response.content:
                    line.startswith(b"data:")

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(REQUESTS)))
        return REQUESTS / (time.perf_counter() - start)


async def _httpx(url: str) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with gate, client.stream("POST", url, json=BODY) as response:
                async for line in response.aiter_lines():
                    line.startswith("data:")

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(REQUESTS)))
        return REQUESTS / (time.perf_counter() - start)


def main() -> None:
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.stubs.instant_openai", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        rates = {name: [] for name in ("aiohttp", "httpx")}
        for _ in range(2):  # alternating, so a slow spell of this VM hits both
            for name, run in (("aiohttp", _aiohttp), ("httpx", _httpx)):
                rates[name].append(asyncio.run(run(url + "/v1/chat/completions")))
    finally:
        stub.terminate()
    best = {name: max(values) for name, values in rates.items()}
    print(
        f"streamed chat completions, concurrency {CONCURRENCY}, against the instant stub: "
        f"aiohttp {best['aiohttp']:.0f} req/s, httpx {best['httpx']:.0f} req/s "
        f"({best['aiohttp'] / best['httpx']:.1f}x): the bench client keeps aiohttp"
    )


if __name__ == "__main__":
    main()
