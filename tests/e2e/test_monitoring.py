"""Monitoring for real (docs/observability.md): Debian's Prometheus, Alertmanager and node
exporter started as roles/r1_native starts them, with the files the role renders, scraping
the real vLLM and tool gateway of this tier's stack; the front door serves them to user ops.

The stack is rendered with a 2 s scrape interval, VllmDown's `for:` at 4 s and Alertmanager's
webhook pointed at the stand-in upstream, which records what it is sent (tests/e2e/conftest.py).
"""

from __future__ import annotations

import ssl
import time

import httpx
import pytest

from r1deploy.monitoring.dashboard import panel_queries
from tests.e2e import stack as stacklib
from tests.e2e.conftest import ALERT_WEBHOOK_PATH, REPO
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

# Dashboard queries with no series on a healthy CPU stack: the GPU row (DCGM exporter, GPU
# hosts only) and the ones that count failures, which this stack has none of.
NO_DATA_HERE = {
    "GPU utilisation",
    "GPU memory used",
    "GPU temperature",
}
FAILURE_ONLY = ("abort|error", 'status="5xx"')


def query(prometheus: str, expr: str) -> list:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    return answer.json()["data"]["result"]


def test_prometheus_scrapes_every_service_of_the_stack_and_all_are_up(monitoring):
    prometheus = monitoring["prometheus_url"]

    def health() -> dict[str, str]:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
        return {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}

    def all_up(active: dict[str, str]) -> bool:
        return set(active) == set(monitoring["jobs"]) and all(h == "up" for h in active.values())

    active = wait_until(health, 30, "every target up", until=all_up)
    assert set(active) == {
        "vllm",
        "tools-gateway",
        "node",
        "prometheus",
        "alertmanager",
        "front-door",
    }
    # The rules the role rendered are loaded, VllmDown with the test's short `for:`.
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for g in rules for r in g["rules"] if r["type"] == "alerting"}
    assert {"VllmDown", "NoModelServerReady", "ToolCallFailureRate", "DiskFreeLow"} <= set(loaded)
    assert loaded["VllmDown"]["duration"] == 4


def test_a_chat_and_a_tool_call_move_the_ttft_histogram_and_the_gateway_counters(
    monitoring, stack_dir, stack_upstream
):
    prometheus = monitoring["prometheus_url"]
    settings = stacklib.read_settings(stack_dir)
    env = stacklib.read_env(stack_dir)

    def total(expr: str) -> float:
        return sum(float(s["value"][1]) for s in query(prometheus, expr))

    ttft_before = total("vllm:time_to_first_token_seconds_count")
    calls_before = total("r1deploy_gateway_tool_calls_total")
    chat = httpx.post(
        f"{settings['vllm']['url']}/v1/chat/completions",
        headers={"Authorization": f"Bearer {env['VLLM_API_KEY']}"},
        json={
            "model": settings["model"]["served_name"],
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 16,
        },
        timeout=120,
    )
    assert chat.status_code == 200, chat.text
    tool = httpx.post(
        f"{settings['gateway']['url']}/tools/get_weather",
        headers={"Authorization": f"Bearer {env['TOOLS_GATEWAY_KEY']}"},
        json={"city": "Paris"},
        timeout=30,
    )
    assert tool.status_code == 200, tool.text
    wait_until(
        lambda: total("vllm:time_to_first_token_seconds_count"),
        60,
        f"a new first token counted (more than {ttft_before:g})",
        until=lambda count: count > ttft_before,
    )
    wait_until(
        lambda: total('r1deploy_gateway_tool_calls_total{tool="get_weather",outcome="ok"}'),
        60,
        f"the tool call counted (more than {calls_before:g})",
        until=lambda count: count > calls_before,
    )


def test_every_dashboard_query_runs_and_returns_series_on_the_live_stack(monitoring):
    prometheus = monitoring["prometheus_url"]
    panels = panel_queries(REPO / "monitoring/dashboards/r1deploy.json", resolve=True)

    def empty() -> list[str]:
        return [
            f"{title}: {expr}"
            for title, expr in panels
            # a query Prometheus cannot parse fails in query()
            if not query(prometheus, expr)
            and title not in NO_DATA_HERE
            and not any(f in expr for f in FAILURE_ONLY)
        ]

    # A rate() needs two scrapes of a counter: one the test before made may be one scrape old.
    wait_until(
        empty,
        20,
        "every dashboard query returns data (those without it last seen)",
        interval_s=2,
        until=lambda missing: not missing,
    )


def test_the_front_door_serves_prometheus_and_alertmanager_to_ops_only(
    monitoring, stack_dir, front_door
):
    settings = stacklib.read_settings(stack_dir)
    env = stacklib.read_env(stack_dir)
    trust = ssl.create_default_context(cafile=str(stack_dir / settings["front_door"]["ca_file"]))
    with httpx.Client(verify=trust, timeout=10) as http:
        for url in monitoring["external_url"].values():
            refused = http.get(url + "-/ready")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic")
            wrong = http.get(url + "-/ready", auth=("ops", "not-the-password"))
            assert wrong.status_code == 401
            ready = http.get(url + "-/ready", auth=("ops", env["MONITORING_PASSWORD"]))
            assert ready.status_code == 200, ready.text
        # Prometheus's own pages link under /prometheus/ (its external URL).
        page = http.get(
            monitoring["external_url"]["prometheus"] + "api/v1/status/flags",
            auth=("ops", env["MONITORING_PASSWORD"]),
        )
        assert page.json()["data"]["web.external-url"] == monitoring["external_url"]["prometheus"]


def test_the_blackbox_exporter_probes_the_front_door_and_reads_its_certificates_end(
    monitoring, stack_dir, front_door
):
    """Job front-door: the probe over HTTPS trusts the stack's CA (probe_success 1), and the
    certificate's end, which FrontDoorCertificateExpiresSoon reads, is in the future."""
    prometheus = monitoring["prometheus_url"]

    def probed():
        ok = query(prometheus, 'probe_success{job="front-door"} == 1')
        ends = query(prometheus, 'probe_ssl_earliest_cert_expiry{job="front-door"}')
        return (ok, ends) if ok and ends else None

    ok, ends = wait_until(probed, 60, "a successful probe of the front door")
    settings = stacklib.read_settings(stack_dir)
    port = settings["front_door"]["local_url"].rsplit(":", 1)[1]
    assert ok[0]["metric"]["instance"] == f"https://127.0.0.1:{port}/front-door-health"
    left_s = float(ends[0]["value"][1]) - time.time()
    # The internal CA issues it for longer than the 30 days it is renewed within.
    assert left_s > 30 * 86400, f"the certificate ends in {left_s / 86400:.1f} days"
    # With data, the alert is evaluated, and quiet.
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"] == "FrontDoorCertificateExpiresSoon"]


@pytest.mark.stops_servers
def test_a_stopped_vllm_fires_its_alert_and_alertmanager_sends_it_to_the_webhook(
    monitoring, vllm_server, stack_upstream
):
    prometheus = monitoring["prometheus_url"]
    vllm_server.stop()

    def firing():
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == "VllmDown" and a["state"] == "firing"
        ]

    alert = wait_until(firing, 60, "VllmDown firing in Prometheus")[0]
    assert alert["labels"]["severity"] == "warning"
    assert "make logs SERVICE=vllm" in alert["annotations"]["description"]

    def delivered():
        return [
            seen.json()
            for seen in stack_upstream.seen
            if seen.path == ALERT_WEBHOOK_PATH
            and any(a["labels"]["alertname"] == "VllmDown" for a in seen.json()["alerts"])
        ]

    payload = wait_until(delivered, 60, "VllmDown delivered to the webhook")[0]
    assert payload["status"] == "firing"
    assert payload["receiver"] == "r1deploy"
