"""`make bench`: why `r1deploy bench` keeps aiohttp while the rest of the package uses httpx.

The same streamed chat-completion loop (SSE lines counted) with each library against the
instant stub server (its own process), concurrency 32: what each client sustains on this
machine. The bench client must sustain ten times the request rate of the server it
measures; a GPU serving the 1.5B model answers hundreds of short requests a second.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx

from tests.bench.vllm_tiny import REPO
from tests.stubs import instant_openai

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
    with instant_openai.running(REPO) as url:
        rates = {name: [] for name in ("aiohttp", "httpx")}
        for _ in range(2):  # alternating, so a slow spell of this VM hits both
            for name, run in (("aiohttp", _aiohttp), ("httpx", _httpx)):
                rates[name].append(asyncio.run(run(url + "/v1/chat/completions")))
    best = {name: max(values) for name, values in rates.items()}
    print(
        f"streamed chat completions, concurrency {CONCURRENCY}, against the instant stub: "
        f"aiohttp {best['aiohttp']:.0f} req/s, httpx {best['httpx']:.0f} req/s "
        f"({best['aiohttp'] / best['httpx']:.1f}x): the bench client keeps aiohttp"
    )


if __name__ == "__main__":
    main()
