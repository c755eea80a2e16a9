"""monitoring.targets, monitoring.alerts, and the monitoring services in services.reachable:
the doctor reads the stack's own Prometheus (a stand-in with recorded answers here; the
real one in tests/e2e/test_monitoring.py)."""

from __future__ import annotations

import json

from r1deploy.doctor.core import FAIL, PASS, SKIP, WARN
from r1deploy.doctor.monitoring import monitoring_alerts, monitoring_targets
from r1deploy.doctor.services import services_reachable
from tests.support.recorded_http import Answer
from tests.unit.test_doctor import ctx_for, healthy_stack, servers  # noqa: F401 (fixture)


def target(job: str, health: str = "up", error: str = "") -> dict:
    return {
        "labels": {"job": job, "instance": f"127.0.0.1:{job}"},
        "scrapeUrl": f"http://127.0.0.1/{job}/metrics",
        "health": health,
        "lastError": error,
    }


def alert(name: str, severity: str) -> dict:
    return {
        "labels": {"alertname": name, "severity": severity},
        "annotations": {"summary": f"{name} summary"},
        "state": "firing",
    }


def monitored_stack(tmp_path, servers, prometheus_routes: dict):  # noqa: F811
    prometheus = servers(
        {
            "GET /-/ready": Answer(200, "Prometheus Server is Ready."),
            **prometheus_routes,
        }
    )
    root = healthy_stack(tmp_path, servers)
    settings = json.loads((root / "settings.json").read_text())
    settings["monitoring"] = {
        "enabled": True,
        "prometheus_url": prometheus.url,
        "alertmanager_url": servers({"GET /-/ready": Answer(200, "OK")}).url,
        "node_exporter_url": servers({"GET /": Answer(200, "<html>")}).url,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    return root


def targets_answer(*targets: dict) -> Answer:
    return Answer(200, {"status": "success", "data": {"activeTargets": list(targets)}})


def test_targets_pass_when_prometheus_scrapes_every_service(tmp_path, servers):  # noqa: F811
    root = monitored_stack(
        tmp_path,
        servers,
        {"GET /api/v1/targets": targets_answer(target("vllm"), target("node"))},
    )
    verdict = monitoring_targets(ctx_for(root))
    assert verdict.status == PASS
    assert verdict.seen == "every target is up: node, vllm"


def test_a_target_down_fails_naming_it_its_error_and_the_log_to_read(tmp_path, servers):  # noqa: F811
    root = monitored_stack(
        tmp_path,
        servers,
        {
            "GET /api/v1/targets": targets_answer(
                target("vllm", "down", 'Get "http://127.0.0.1:8000/metrics": connection refused'),
                target("node", "down", "context deadline exceeded"),
                target("tools-gateway"),
            )
        },
    )
    verdict = monitoring_targets(ctx_for(root))
    assert verdict.status == FAIL
    assert "vllm http://127.0.0.1/vllm/metrics: down (Get" in verdict.seen
    assert "connection refused" in verdict.seen and "tools-gateway" not in verdict.seen
    assert "make logs SERVICE=node-exporter, make logs SERVICE=vllm" in verdict.fix
    assert verdict.data["down"] == ["vllm", "node"]


def test_targets_skip_when_monitoring_is_off_or_prometheus_does_not_answer(tmp_path, servers):  # noqa: F811
    off = healthy_stack(tmp_path / "off", servers)
    assert monitoring_targets(ctx_for(off)).status == SKIP
    silent = monitored_stack(tmp_path / "silent", servers, {})  # 404 on the API
    verdict = monitoring_targets(ctx_for(silent))
    assert verdict.status == SKIP and "/api/v1/targets" in verdict.seen
    assert "HTTP 404, not an answer of Prometheus" in verdict.seen


def test_firing_alerts_warn_and_a_page_fails(tmp_path, servers):  # noqa: F811
    quiet = monitored_stack(
        tmp_path / "quiet",
        servers,
        {"GET /api/v1/alerts": Answer(200, {"data": {"alerts": []}})},
    )
    assert monitoring_alerts(ctx_for(quiet)).status == PASS
    warning = monitored_stack(
        tmp_path / "warning",
        servers,
        {
            "GET /api/v1/alerts": Answer(
                200, {"data": {"alerts": [alert("DiskFreeLow", "warning")]}}
            )
        },
    )
    verdict = monitoring_alerts(ctx_for(warning))
    assert verdict.status == WARN
    assert verdict.seen == "1 alert(s) firing: DiskFreeLow: DiskFreeLow summary"
    page = monitored_stack(
        tmp_path / "page",
        servers,
        {
            "GET /api/v1/alerts": Answer(
                200,
                {
                    "data": {
                        "alerts": [
                            alert("DiskFreeLow", "warning"),
                            alert("NoModelServerReady", "page"),
                        ]
                    }
                },
            )
        },
    )
    verdict = monitoring_alerts(ctx_for(page))
    assert verdict.status == FAIL
    assert verdict.data["alerts"] == ["DiskFreeLow", "NoModelServerReady"]


def test_services_reachable_counts_prometheus_alertmanager_and_node_exporter(tmp_path, servers):  # noqa: F811
    root = monitored_stack(tmp_path, servers, {})
    verdict = services_reachable(ctx_for(root))
    assert verdict.status == PASS
    assert verdict.seen == (
        "6 services answer: vllm 200, open-webui 200, tools-gateway 200, node-exporter 200, "
        "alertmanager 200, prometheus 200"
    )
