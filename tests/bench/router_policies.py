"""vLLM's router policies on a shared-prefix workload (make bench; docs/scale-out.md):
cache_aware (with the router's balance threshold and with 1) against round_robin in front
of the same two vLLM replicas of the scripted test
model, with the prefix-cache hit rate read from the replicas' own /metrics
(vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total, in tokens) and the time
to first token seen by the client (median, p90).

Workload per policy: SYSTEM_PROMPTS long system prompts (distinct per policy, so neither
policy finds the other's prefixes cached), REQUESTS_EACH requests each with a short user
turn of its own, shuffled, CONCURRENCY at a time, streamed, MAX_TOKENS out. Bounded: about
10-20 s per run after the replicas are up (a warm-up run, then ORDER). Loopback ports 18530-18539.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e import router_fixtures as rf
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD, build_test_model

# Each variant: a label and RouterSettings' fields. cache_aware's router default balances by
# load only past an in-flight gap of 64; "cache_aware/1" balances past a gap of 1.
VARIANTS = {
    "round_robin": {"policy": "round_robin"},
    "cache_aware": {"policy": "cache_aware"},
    "cache_aware/1": {"policy": "cache_aware", "balance_abs_threshold": 1},
}
# Both orders (ABCCBA): the first runs must not take the blame for a cold server.
ORDER = (
    "round_robin",
    "cache_aware",
    "cache_aware/1",
    "cache_aware/1",
    "cache_aware",
    "round_robin",
)
SYSTEM_PROMPTS, REQUESTS_EACH, CONCURRENCY, MAX_TOKENS = 8, 8, 4, 16
PROMPT_WORDS = 400
PORTS = [18530, 18531]
ROUTER_PORT, ROUTER_METRICS_PORT = 18535, 18536
REPLICA_URLS = [f"http://127.0.0.1:{port}" for port in PORTS]


def system_prompt(rng: random.Random) -> str:
    words = [f"{rng.choice('bcdfghklmnprstvz')}{rng.randrange(10**6)}" for _ in range(PROMPT_WORDS)]
    return "You are a helpful assistant. Context: " + " ".join(words)


def cache_counters() -> list[tuple[float, float]]:
    return [
        (
            rf.metric_sum(url, "vllm:prefix_cache_hits_total"),
            rf.metric_sum(url, "vllm:prefix_cache_queries_total"),
        )
        for url in REPLICA_URLS
    ]


def run_policy(variant: str, model: str, key: str, seed: int) -> dict:
    rng = random.Random(seed)
    prompts = [system_prompt(rng) for _ in range(SYSTEM_PROMPTS)]
    jobs = [(i, j) for i in range(SYSTEM_PROMPTS) for j in range(REQUESTS_EACH)]
    rng.shuffle(jobs)
    router = rf.router(
        REPLICA_URLS,
        ROUTER_PORT,
        ROUTER_METRICS_PORT,
        BUILD / "logs",
        name=f"bench-router-{variant.replace('/', '-')}",
        **VARIANTS[variant],
    )
    rf.start_all([router], rf.ROUTER_READY_S)
    url = f"http://127.0.0.1:{ROUTER_PORT}"
    try:
        before = cache_counters()
        served_before = [rf.successes(u) for u in REPLICA_URLS]

        def one(job):
            i, j = job
            body = {
                "model": model,
                "messages": [
                    {"role": "system", "content": prompts[i]},
                    {"role": "user", "content": f"question {j} {rng.random():.6f}"},
                ],
                "max_tokens": MAX_TOKENS,
            }
            return rf.stream_chat(url, key, body)

        start = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(one, jobs))
        wall = time.perf_counter() - start
        after = cache_counters()
        served = [rf.successes(u) - b for u, b in zip(REPLICA_URLS, served_before, strict=True)]
    finally:
        router.stop()
    assert all(r["done"] for r in results), "a stream ended without [DONE]"
    hits = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    queries = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    ttfts = sorted(r["ttft_s"] for r in results if r["ttft_s"] is not None)
    return {
        "policy": variant,
        "requests": len(results),
        "wall_s": wall,
        "hit_rate": hits / queries if queries else 0.0,
        "hits": hits,
        "queries": queries,
        "ttft_median_ms": statistics.median(ttfts) * 1000,
        "ttft_p90_ms": ttfts[int(0.9 * (len(ttfts) - 1))] * 1000,
        "served": served,
    }


def main() -> None:
    missing = rf.router_env_missing()
    if missing:
        print(f"router policies: skipped: {missing}")
        return
    model_dir = build_test_model("scripted")
    with tempfile.TemporaryDirectory(prefix="r1deploy-bench-router-") as tmp:
        stack = stacklib.render_test_stack(
            Path(tmp) / "stack",
            vllm_port=PORTS[0],
            webui_port=ROUTER_PORT + 2,
            gateway_port=ROUTER_PORT + 3,
            tools_file=(stacklib.REPO / "tools.json").resolve(),
        )
        vllm = stacklib.native_services(stack, model_dir)["vllm"]
        model = vllm["argv"][vllm["argv"].index("--served-model-name") + 1]
        key = stacklib.read_env(stack)["VLLM_API_KEY"]
        replicas = [
            rf.replica(vllm, i, port, BUILD / "logs" / "bench") for i, port in enumerate(PORTS)
        ]
        started = time.perf_counter()
        rf.start_all(replicas, rf.REPLICA_READY_S)
        print(f"router policies: 2 replicas healthy after {time.perf_counter() - started:.0f} s")
        try:
            # Warm-up (not reported): the same shapes through both replicas, its own prompts.
            run_policy("round_robin", model, key, seed=len(ORDER))
            rows = [run_policy(variant, model, key, seed) for seed, variant in enumerate(ORDER)]
        finally:
            rf.stop_all(replicas)
    print(
        f"\n=== router policies: {SYSTEM_PROMPTS} system prompts of {PROMPT_WORDS} words x "
        f"{REQUESTS_EACH} requests, concurrency {CONCURRENCY}, {MAX_TOKENS} tokens out, "
        "2 replicas (tiny scripted model, CPU)"
    )
    print(
        f"{'policy':<14} {'requests':>8} {'wall s':>7} {'prefix hit':>10} "
        f"{'TTFT p50 ms':>11} {'TTFT p90 ms':>11}  per replica"
    )
    for row in rows:
        print(
            f"{row['policy']:<14} {row['requests']:>8} {row['wall_s']:>7.1f} "
            f"{row['hit_rate']:>10.1%} {row['ttft_median_ms']:>11.1f} {row['ttft_p90_ms']:>11.1f}"
            f"  {[int(s) for s in row['served']]}"
        )


if __name__ == "__main__":
    main()
