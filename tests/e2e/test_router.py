"""Scale-out: two real vLLM replicas of the scripted model behind vLLM's router
(vllm-router 0.1.17, r1deploy.router's command line) (docs/scale-out.md): the tier's own
vLLM (already running for the other tests: one start less) and a second process of the same
service on loopback port 18501, the routers on 18510-18513. Chat and auth through the
router, spread over both replicas, and the second replica killed under load: how many
requests fail, how fast the router stops sending to it, and that it rejoins once
restarted."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from r1deploy.router import RouterSettings
from r1deploy.testmodel import script
from tests.e2e import router_fixtures as rf
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD, VLLM_PORT

REPLICA_PORTS = (VLLM_PORT, rf.PORT_BASE + 1)  # the tier's vLLM, and one started here
ROUTER_PORT, ROUTER_METRICS_PORT = rf.PORT_BASE + 10, rf.PORT_BASE + 11
ROUTER_URL = f"http://127.0.0.1:{ROUTER_PORT}"
REPLICA_URLS = [f"http://127.0.0.1:{port}" for port in REPLICA_PORTS]
SETTINGS = RouterSettings()  # what the stack would run (cache_aware, 5 s x 2 health checks)
# From a replica's death to the router dropping it: failed health checks (interval x
# threshold, each up to the check timeout), plus one interval of phase, plus slack.
DETECTION_WINDOW_S = (
    SETTINGS.health_check_interval_s * (SETTINGS.health_failure_threshold + 1)
    + SETTINGS.health_check_timeout_s * SETTINGS.health_failure_threshold
    + 5
)


@pytest.fixture(scope="module")
def served(stack_services) -> dict:
    vllm = stack_services["vllm"]
    return {"service": vllm, "model": vllm["argv"][vllm["argv"].index("--served-model-name") + 1]}


@pytest.fixture(scope="module")
def api_key(stack_dir) -> str:
    return stacklib.read_env(stack_dir)["VLLM_API_KEY"]


@pytest.fixture(scope="module")
def routed(served, vllm_server):
    """The tier's vLLM as replica 0, a second replica of the same service, and the router in
    front of both; yields the replicas (test_failover kills and replaces replica 1: the list
    is updated in place so that teardown stops the live one; replica 0 is the tier's)."""
    missing = rf.router_env_missing()
    if missing:
        pytest.fail(missing)
    logs = BUILD / "logs"
    second = rf.replica(served["service"], 1, REPLICA_PORTS[1], logs)
    rf.start_all([second], rf.REPLICA_READY_S)
    replicas = [vllm_server, second]
    router = rf.router(REPLICA_URLS, ROUTER_PORT, ROUTER_METRICS_PORT, logs)
    try:
        rf.start_all([router], rf.ROUTER_READY_S)
    except Exception:
        rf.stop_all(replicas[1:])
        raise
    yield replicas
    rf.stop_all([*replicas[1:], router])


auth, unique_prompt = rf.auth, rf.unique_prompt


def test_models_chat_and_stream_through_the_router(routed, served, api_key):
    models = requests.get(f"{ROUTER_URL}/v1/models", headers=auth(api_key), timeout=10)
    assert models.status_code == 200
    assert [m["id"] for m in models.json()["data"]] == [served["model"]]

    answer = requests.post(
        f"{ROUTER_URL}/v1/chat/completions",
        headers=auth(api_key),
        json=rf.chat_body(served["model"], "hello"),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    message = answer.json()["choices"][0]["message"]
    assert (message["reasoning"], message["content"]) == (script.REASONING, script.ANSWER)

    stream = rf.stream_chat(ROUTER_URL, api_key, rf.chat_body(served["model"], "hello"))
    assert stream["done"], stream
    assert stream["chunks"] > 2  # token by token, not one buffered answer
    assert stream["text"] == script.REASONING + script.ANSWER


def test_tool_call_through_the_router(routed, served, api_key, stack_dir):
    tools = stacklib.json.loads((stack_dir / "tools.openai.json").read_text())
    answer = requests.post(
        f"{ROUTER_URL}/v1/chat/completions",
        headers=auth(api_key),
        json=rf.chat_body(served["model"], script.WEATHER_PROMPT, tools=tools, tool_choice="auto"),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    calls = answer.json()["choices"][0]["message"]["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (script.TOOL_NAME, script.TOOL_ARGUMENTS)
    ]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_the_replicas_key_is_required_through_the_router(routed, served, key):
    # The router forwards the client's Authorization header; the replica answers 401.
    for method, path, body in [
        ("get", "/v1/models", None),
        ("post", "/v1/chat/completions", rf.chat_body(served["model"], "hello")),
    ]:
        response = requests.request(
            method, f"{ROUTER_URL}{path}", headers=auth(key) if key else {}, json=body, timeout=30
        )
        assert response.status_code == 401, (path, response.status_code, response.text)


def test_the_routers_own_routes_answer_without_a_key(routed):
    # Why the router stays on the loopback or an internal network (docs/scale-out.md): its
    # worker list (and /add_worker, /remove_worker, not called here) take no key.
    workers = requests.get(f"{ROUTER_URL}/workers", timeout=10)
    assert workers.status_code == 200
    assert sorted(w["url"] for w in workers.json()["workers"]) == REPLICA_URLS
    readiness = requests.get(f"{ROUTER_URL}/readiness", timeout=10).json()
    assert (readiness["healthy_workers"], readiness["total_workers"]) == (2, 2)


def _chat_many(
    url: str, model: str, key: str, n: int, concurrency: int = 4, body: dict | None = None
) -> list[int]:
    """``n`` chats, ``concurrency`` at a time, each with a prompt of its own: status codes."""
    body = body or rf.chat_body(model, "", max_tokens=8)

    def one(_):
        message = {"role": "user", "content": unique_prompt()}
        return requests.post(
            f"{url}/v1/chat/completions",
            headers=auth(key),
            json={**body, "messages": [message]},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n)))


def test_round_robin_spreads_requests_evenly_over_both_replicas(routed, served, api_key):
    # A second router (round_robin) in front of the same replicas: each replica's own
    # vllm:request_success_total counts what it served.
    n = 24
    router = rf.router(
        REPLICA_URLS,
        ROUTER_PORT + 2,
        ROUTER_METRICS_PORT + 2,
        BUILD / "logs",
        name="vllm-router-round-robin",
        policy="round_robin",
    )
    rf.start_all([router], rf.ROUTER_READY_S)
    try:
        before = [rf.successes(url) for url in REPLICA_URLS]
        codes = _chat_many(f"http://127.0.0.1:{ROUTER_PORT + 2}", served["model"], api_key, n)
        served_by = [rf.successes(url) - b for url, b in zip(REPLICA_URLS, before, strict=True)]
    finally:
        router.stop()
    print(f"\nround_robin: {n} requests -> replicas {served_by}")
    assert codes == [200] * n
    assert served_by == [n / 2, n / 2]


def test_cache_aware_serves_every_request_and_says_where(routed, served, api_key):
    # cache_aware (the default) sends a prompt that matches no earlier one to the least
    # loaded replica, the first listed on a tie: with short answers most go to one replica.
    # The split depends on timing, so it is printed, not asserted.
    n = 24
    before = [rf.successes(url) for url in REPLICA_URLS]
    codes = _chat_many(ROUTER_URL, served["model"], api_key, n)
    served_by = [rf.successes(url) - b for url, b in zip(REPLICA_URLS, before, strict=True)]
    print(f"\ncache_aware: {n} requests with distinct prompts -> replicas {served_by}")
    assert codes == [200] * n
    assert sum(served_by) == n


def test_a_killed_replica_is_dropped_then_rejoins(routed, served, api_key):
    victim_url, survivor_url = REPLICA_URLS[1], REPLICA_URLS[0]
    results: list = []
    stop = threading.Event()
    threads = rf.load(ROUTER_URL, served["model"], api_key, stop, results)
    time.sleep(5)
    survivor_before = rf.successes(survivor_url)
    killed_at = time.monotonic()
    os.killpg(routed[1].process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
    routed[1].process.wait(timeout=30)
    dropped_after = None
    while time.monotonic() - killed_at < DETECTION_WINDOW_S + 10:
        if dropped_after is None and not rf.router_workers(ROUTER_URL).get(victim_url, True):
            dropped_after = time.monotonic() - killed_at
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    after_kill = [r for r in results if r[1] >= killed_at]
    failed = [r for r in after_kill if not r[2]]
    last_failure_s = max((r[1] - killed_at for r in failed), default=0.0)
    late = [r for r in after_kill if r[0] >= killed_at + DETECTION_WINDOW_S]
    survivor_gain = rf.successes(survivor_url) - survivor_before
    print(
        f"\nfailover: {len(after_kill)} requests ended after the kill, {len(failed)} failed "
        f"({sorted({str(r[3]) for r in failed})}); last failure {last_failure_s:.1f} s after "
        f"the kill; router marked the replica unhealthy after "
        f"{dropped_after if dropped_after is None else round(dropped_after, 1)} s; "
        f"{len(late)} requests started after the {DETECTION_WINDOW_S} s window, "
        f"all ok: {all(r[2] for r in late)}"
    )
    assert dropped_after is not None and dropped_after <= DETECTION_WINDOW_S, dropped_after
    assert len(late) >= 5, "too few requests after the detection window to judge"
    assert all(r[2] for r in late), [r[3] for r in late if not r[2]]
    assert last_failure_s <= DETECTION_WINDOW_S
    # Everything after the kill was answered by the survivor (the victim is gone).
    assert survivor_gain >= len([r for r in after_kill if r[2]]) - 2

    # Restart the replica: the router's health checks bring it back into rotation.
    routed[1] = rf.replica(served["service"], 1, REPLICA_PORTS[1], BUILD / "logs")
    restarted = time.monotonic()
    rf.start_all([routed[1]], rf.REPLICA_READY_S)
    deadline = time.monotonic() + DETECTION_WINDOW_S + 30
    while not rf.router_workers(ROUTER_URL).get(victim_url) and time.monotonic() < deadline:
        time.sleep(0.5)
    rejoined_s = time.monotonic() - restarted
    assert rf.router_workers(ROUTER_URL).get(victim_url), "the restarted replica never rejoined"
    # cache_aware sends a prompt it has not seen to the least loaded replica (the first
    # listed on a tie): overlapping, longer answers give the survivor a load to avoid.
    rejoin_body = rf.chat_body(served["model"], "", max_tokens=64, ignore_eos=True)
    for _ in range(10):
        codes = _chat_many(ROUTER_URL, served["model"], api_key, 8, body=rejoin_body)
        assert codes == [200] * 8
        if rf.successes(victim_url) > 0:
            break
    print(f"rejoin: healthy in the router {rejoined_s:.1f} s after the restart began")
    assert rf.successes(victim_url) > 0, "the restarted replica received no request"
