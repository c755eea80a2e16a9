"""Benchmark: what the front door (docs/front-door.md) adds to time to first token.

Debian's nginx (/usr/sbin/nginx) with the configuration the role renders for the native
runtime (rendered once here with the real role, as the e2e tier renders it: tests/e2e/stack.py)
in front of the instant OpenAI stand-in (tests/stubs/instant_openai.py, in its own process), so
the stand-in costs almost nothing and what is left is the front door's: TLS, the key check, the
proxying. `r1deploy bench`'s load generator at concurrency 1 and 8, alternately through the
front door (HTTPS, the ops key, trusting the stack's CA: what `r1deploy bench --stack-dir`
does) and past it (`--inside`: the stand-in directly), ROUNDS times each in the same run, so a
change in the machine's load touches both. Added TTFT = the median over rounds of (through
minus direct) of each run's median TTFT. Goal: under 2 ms; printed, never failed on.

The stack is rendered with the API limits raised (API_LIMITS): at the defaults (10 requests/s
with a burst of 20, 16 connections per client address) the front door would answer most of a
bench from one loopback address with 429s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp

from r1deploy.bench import client
from r1deploy.bench.target import Target, probe_server, resolve_target
from r1deploy.bench.workload import build_prompts
from tests.bench.gateway_latency import cpu_seconds
from tests.e2e import stack as stacklib
from tests.stubs import instant_openai

REPO = Path(__file__).resolve().parents[2]
NGINX = Path("/usr/sbin/nginx")
GOAL_MS = 2.0
ROUNDS = 12
CONCURRENCY = (1, 8)
REQUESTS = {1: 200, 8: 400}  # a run at each level (after a warm-up of one per connection)
INPUT_LEN, OUTPUT_LEN = 64, 16
# Far above what a loopback bench sends (the defaults: 10/s, burst 20, 16 connections).
API_LIMITS = {
    "r1_stack_api_rate_per_s": 100000,
    "r1_stack_api_burst": 100000,
    "r1_stack_api_max_connections": 1024,
}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def render(out: Path, stub_url: str) -> Path:
    """The native runtime's stack with a front door, its model server at the stand-in's port."""
    https, http, webui, gateway = free_ports(4)
    return stacklib.render_test_stack(
        out,
        vllm_port=urllib.parse.urlsplit(stub_url).port,
        webui_port=webui,
        gateway_port=gateway,
        tools_file=REPO / "tools.json",
        front_door_ports=(https, http),
        **API_LIMITS,
    )


def wait_answering(door: Target, server: stacklib.Server, timeout_s: float = 30) -> None:
    """Until the front door passes /v1/models on to the stand-in (its / is Open WebUI's,
    which does not run here)."""
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"nginx exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            answer = requests.get(
                door.base_url + "/v1/models", headers=door.headers(), verify=door.verify, timeout=2
            )
            if answer.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the front door did not answer in {timeout_s:.0f}s:\n{server.log_tail()}")


def nginx_cpu_seconds(master: int) -> float:
    """CPU time of nginx's master and workers (its children) so far."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sum(cpu_seconds(pid) for pid in [master, *map(int, children)])


async def measure(door: Target, direct: Target) -> dict[int, dict[str, list[float]]]:
    """Each run's median TTFT (ms), by concurrency and path, runs alternating in order."""
    paths = {"door": door, "direct": direct}
    sessions = {
        name: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ssl=t.ssl_context()),
            trust_env=False,
        )
        for name, t in paths.items()
    }
    ttft: dict[int, dict[str, list[float]]] = {c: {"door": [], "direct": []} for c in CONCURRENCY}
    try:
        for name, target in paths.items():
            await probe_server(sessions[name], target)
        most = max(REQUESTS.values()) + max(CONCURRENCY)
        prompts, _ = await build_prompts(sessions["direct"], direct, most, INPUT_LEN, None, 1)
        texts = [p.text for p in prompts]
        for round_ in range(ROUNDS):
            for conc in CONCURRENCY:
                order = ("door", "direct") if (round_ + conc) % 2 == 0 else ("direct", "door")
                for name in order:
                    n = REQUESTS[conc]
                    settings = client.LoadSettings(
                        output_len=OUTPUT_LEN, num_prompts=n, concurrency=conc, warmup=conc
                    )
                    level = await client.run_level(
                        sessions[name], paths[name], texts[:n], texts[n : n + conc], settings
                    )
                    if level["status"] != "complete":
                        raise RuntimeError(
                            f"{name} c={conc}: {'; '.join(level['partial_reasons'])} "
                            f"({level['errors']})"
                        )
                    ttft[conc][name].append(level["metrics"]["ttft"]["median_ms"])
    finally:
        for session in sessions.values():
            await session.close()
    return ttft


def main() -> int:
    if not NGINX.is_file():
        print(f"front door latency: skipped: no {NGINX} (apt-get install nginx-light)")
        return 0
    with (
        instant_openai.running(REPO) as stub_url,
        tempfile.TemporaryDirectory(prefix="r1deploy-bench-door-") as tmp,
    ):
        print(
            "front door latency: rendering the stack with the role (native runtime)...", flush=True
        )
        stack = render(Path(tmp) / "render", stub_url)
        service = stacklib.front_door_service(stack)
        nginx = stacklib.Server(
            "front-door",
            service["argv"],
            service["env"],
            service["health_url"],
            Path(tmp) / "front-door.log",
            Path(service["workdir"]),
            verify=service["verify"],
        ).start()
        try:
            # As `r1deploy bench --stack-dir STACK [--inside] --model stub-model` resolves them.
            door = resolve_target(str(stack), None, "stub-model", None)
            direct = resolve_target(str(stack), None, "stub-model", None, inside=True)
            assert door.through == "front door" and direct.base_url == stub_url
            wait_answering(door, nginx)
            cpu_before = nginx_cpu_seconds(nginx.process.pid)
            ttft = asyncio.run(measure(door, direct))
            door_requests = ROUNDS * sum(REQUESTS[c] + c for c in CONCURRENCY)
            cpu_ms = (nginx_cpu_seconds(nginx.process.pid) - cpu_before) * 1000 / door_requests
        finally:
            nginx.stop()
    load = os.getloadavg()[0]
    print(
        f"front door added TTFT: Debian nginx (role-rendered native config) in front of the "
        f"instant stand-in, {ROUNDS} alternating runs a path and level, {INPUT_LEN} in / "
        f"{OUTPUT_LEN} out tokens, load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        "  (stack rendered with the API limits raised: "
        + ", ".join(f"{k}={v}" for k, v in API_LIMITS.items())
        + "; the defaults would rate-limit a loopback bench)"
    )
    print(
        f"  {'conc':>4} {'requests/run':>12} {'direct ms':>10} {'door ms':>8} "
        f"{'added ms':>9} {'added min..max':>16}"
    )
    met = True
    for conc in CONCURRENCY:
        door_ms, direct_ms = ttft[conc]["door"], ttft[conc]["direct"]
        added = [d - i for d, i in zip(door_ms, direct_ms, strict=True)]
        median_added = statistics.median(added)
        met = met and median_added < GOAL_MS
        print(
            f"  {conc:>4} {REQUESTS[conc]:>12} {statistics.median(direct_ms):>10.2f} "
            f"{statistics.median(door_ms):>8.2f} {median_added:>9.2f} "
            f"{min(added):>7.2f}..{max(added):<7.2f}"
        )
    print(
        "  (medians over the runs of each run's median TTFT; added: through the front door "
        "minus direct, run by run)"
    )
    print(f"  nginx CPU per request {cpu_ms:.2f} ms (its own work, whatever the load)")
    print(f"  goal: under {GOAL_MS:g} ms added at each level: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
