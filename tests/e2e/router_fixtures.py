"""Several vLLM replicas of a test model behind vLLM's router (docs/scale-out.md), for the
policy bench (tests/bench/router_policies.py), and the load and metric helpers the deploy
tier's router tests use.

Each replica is the stack's own vLLM service (roles/r1_native's filter: same argv, API key,
served name, tool-call flags) on another loopback port, its own process; the router's
command line comes from r1deploy.router. Loopback ports R1DEPLOY_ROUTER_PORT_BASE (18500)
+ 0..19, apart from the rest of the tier.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path

import requests

from r1deploy.bench.sse import DONE, SSEParser
from r1deploy.router import RouterSettings, router_command
from tests.e2e import stack as stacklib

ROUTER_BIN = stacklib.CACHE / "vllm-router-0.1.17" / "bin" / "vllm-router"
PORT_BASE = int(os.environ.get("R1DEPLOY_ROUTER_PORT_BASE", "18500"))
REPLICA_READY_S, ROUTER_READY_S = 600, 60


def router_env_missing() -> str | None:
    """Why the router's env cannot be used, or None when it can."""
    if not ROUTER_BIN.exists():
        return f"no router env at {ROUTER_BIN.parents[1]} (create it: tests/e2e/envs.sh router)"
    return None


def replica(vllm_service: dict, index: int, port: int, log_dir: Path) -> stacklib.Server:
    """The stack's vLLM service as replica ``index`` on ``port`` (not started)."""
    argv = list(vllm_service["argv"])
    argv[argv.index("--port") + 1] = str(port)
    return stacklib.Server(
        f"replica{index}",
        argv,
        dict(vllm_service["env"]),
        f"http://127.0.0.1:{port}/health",
        log_dir / f"router-replica{index}.log",
        Path(vllm_service["workdir"]),
    )


def router(
    worker_urls: list[str],
    port: int,
    prometheus_port: int,
    log_dir: Path,
    name: str = "vllm-router",
    **settings,
) -> stacklib.Server:
    """vllm-router in front of ``worker_urls`` (not started), its log ``name``.log;
    ``settings``: RouterSettings'. Healthy when its /readiness says every worker is."""
    argv = router_command(
        worker_urls,
        RouterSettings(
            port=port, prometheus_port=prometheus_port, binary=str(ROUTER_BIN), **settings
        ),
    )
    return stacklib.Server(
        name,
        argv,
        {},
        f"http://127.0.0.1:{port}/readiness",
        log_dir / f"{name}.log",
        log_dir,
    )


def start_all(servers: list[stacklib.Server], timeout_s: float) -> None:
    """Start every server, then wait for each (replicas load side by side); on a failure
    stop them all and raise."""
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_healthy(timeout_s)
    except Exception:
        stop_all(servers)
        raise


def stop_all(servers: list[stacklib.Server]) -> None:
    for server in reversed(servers):
        server.stop()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_sum(base_url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples on ``base_url``/metrics (those with ``labels``)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        sample_labels = match.group(2) or ""
        if all(f'{key}="{value}"' in sample_labels for key, value in labels.items()):
            total += float(match.group(3))
    return total


def successes(base_url: str) -> float:
    """Requests a replica finished (vllm:request_success_total, every finish reason)."""
    return metric_sum(base_url, "vllm:request_success_total")


def router_workers(router_url: str) -> dict[str, bool]:
    """The router's view of its workers: URL -> healthy (its /workers route)."""
    workers = requests.get(f"{router_url}/workers", timeout=5).json()["workers"]
    return {worker["url"]: worker["is_healthy"] for worker in workers}


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def unique_prompt() -> str:
    # A distinct prefix per request: cache_aware sees no shared prefix and balances.
    return f"{uuid.uuid4().hex} hello"


def load(
    router_url: str,
    model: str,
    api_key: str,
    stop: threading.Event,
    results: list,
    workers: int = 2,
) -> list[threading.Thread]:
    """Chat requests back to back from ``workers`` threads until ``stop``, each appending
    (start, end, ok, detail) to ``results``; the threads, started."""

    def loop():
        session = requests.Session()
        while not stop.is_set():
            start = time.monotonic()
            try:
                response = session.post(
                    f"{router_url}/v1/chat/completions",
                    headers=auth(api_key),
                    json=chat_body(model, unique_prompt(), max_tokens=16),
                    timeout=30,
                )
                ok, detail = response.status_code == 200, response.status_code
            except requests.RequestException as exc:
                ok, detail = False, type(exc).__name__
            results.append((start, time.monotonic(), ok, detail))

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    return threads


def chat_body(model: str, prompt: str, **more) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **more}


def stream_chat(url: str, key: str, body: dict, timeout: float = 60) -> dict:
    """A streamed chat: its content pieces, whether ``[DONE]`` came, time to first token."""
    start = time.perf_counter()
    ttft = None
    pieces, done, chunks = [], False, 0
    with requests.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={**body, "stream": True},
        timeout=timeout,
        stream=True,
    ) as response:
        response.raise_for_status()
        parser = SSEParser()  # the bench's incremental parser: events split across reads
        for read in response.iter_content(chunk_size=None):
            for payload in parser.feed(read):
                if payload == DONE:
                    done = True
                    break
                chunks += 1
                for choice in json.loads(payload).get("choices", []):
                    delta = choice.get("delta") or {}
                    piece = (delta.get("reasoning") or "") + (delta.get("content") or "")
                    if piece:
                        if ttft is None:
                            ttft = time.perf_counter() - start
                        pieces.append(piece)
            if done:
                break
    return {"text": "".join(pieces), "chunks": chunks, "done": done, "ttft_s": ttft}
