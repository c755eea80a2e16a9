"""Interleave `vllm bench serve`'s request function and `r1deploy bench`'s on one run against
one server, then compute each tool's metrics with its own code. Prints one JSON object.

Requests of the two tools are adjacent in time (taken in order by C slots: about half the
in-flight requests are each tool's), so a load change on a shared host hits both alike:
what differs is only how each tool times, counts and summarises. The order alternates in
pairs, vLLM's then ours, ours then vLLM's (A B B A ...): requests sent together are
queued, scheduled and streamed back in the order they were sent, and the first of a pair
sees its first token ~4% sooner at concurrency 8 (measured here: median TTFT ratio
ours/vLLM 0.96 when ours went first, 1.04-1.05 when vLLM's did).

Usage: <vllm-env>/bin/python tests/e2e/bench_interleaved_driver.py URL SERVED_NAME
       CONCURRENCY NUM_PROMPTS INPUT_LEN OUTPUT_LEN SEED
(this repository on PYTHONPATH).
"""

import asyncio
import sys
import time

import aiohttp
from vllm.benchmarks.lib.endpoint_request_func import (
    RequestFuncInput,
    async_request_openai_chat_completions,
)
from vllm.benchmarks.serve import calculate_metrics

from r1deploy.bench.client import LoadSettings, stream_chat
from r1deploy.bench.metrics import compute_metrics
from r1deploy.bench.target import Target
from r1deploy.bench.workload import build_prompts


async def run(url, served, concurrency, num_prompts, input_len, output_len, seed):
    target = Target(base_url=url, model=served)
    settings = LoadSettings(output_len=output_len, concurrency=concurrency)
    ours_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    # vLLM's own session settings (benchmark() in vllm/benchmarks/serve.py).
    vllm_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=concurrency, limit_per_host=concurrency, keepalive_timeout=60
        ),
        timeout=aiohttp.ClientTimeout(total=6 * 60 * 60),
    )
    prompts, _ = await build_prompts(
        ours_session, target, num_prompts + 2 * concurrency, input_len, None, seed
    )
    texts = [p.text for p in prompts]
    warm, texts = texts[: 2 * concurrency], texts[2 * concurrency :]

    async def vllm_request(text):
        return await async_request_openai_chat_completions(
            RequestFuncInput(
                prompt=text,
                api_url=url + "/v1/chat/completions",
                prompt_len=input_len,
                output_len=output_len,
                model=served,
                ignore_eos=True,
            ),
            vllm_session,
        )

    async def ours_request(text):
        return await stream_chat(ours_session, target, text, settings)

    tools = (vllm_request, ours_request)
    await asyncio.gather(*(tools[i % 2](t) for i, t in enumerate(warm)))  # warm-up, both

    outputs = {"vllm": [], "r1deploy": []}
    queue = list(enumerate(texts))

    async def slot(k):
        while queue:
            j, text = queue.pop(0)
            which = (j + j // 2) % 2  # 0 1 1 0 0 1 1 0 ...: half each, each first half the time
            result = await tools[which](text)
            outputs["vllm" if which == 0 else "r1deploy"].append(result)

    start = time.perf_counter()
    await asyncio.gather(*(slot(k) for k in range(concurrency)))
    duration = time.perf_counter() - start
    await ours_session.close()
    await vllm_session.close()

    ref, _ = calculate_metrics([], outputs["vllm"], duration, None, [50.0], {})
    ours = compute_metrics(outputs["r1deploy"], duration)
    return {
        "duration_s": duration,
        "vllm": {
            "completed": ref.completed,
            "total_output_tokens": ref.total_output,
            "total_input_tokens": ref.total_input,
            "output_throughput": ref.output_throughput,
            "median_ttft_ms": ref.median_ttft_ms,
            "median_tpot_ms": ref.median_tpot_ms,
            "median_itl_ms": ref.median_itl_ms,
            "median_e2el_ms": ref.median_e2el_ms,
        },
        "r1deploy": {
            "completed": ours["completed"],
            "total_output_tokens": ours["total_output_tokens"],
            "total_input_tokens": ours["total_input_tokens"],
            "output_throughput": ours["output_throughput"],
            "median_ttft_ms": ours["ttft"]["median_ms"],
            "median_tpot_ms": ours["tpot"]["median_ms"],
            "median_itl_ms": ours["itl"]["median_ms"],
            "median_e2el_ms": ours["e2el"]["median_ms"],
        },
    }


if __name__ == "__main__":
    import json

    url, served = sys.argv[1:3]
    numbers = list(map(int, sys.argv[3:8]))
    print(json.dumps(asyncio.run(run(url, served, *numbers))))
