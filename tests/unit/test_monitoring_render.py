"""Monitoring as roles/r1_stack renders it and roles/r1_native runs it: Prometheus's scrapes,
the alerting rules with the inventory's durations and objective, Alertmanager's receiver,
the front door's credentials, and Debian's programs with the compose services' flags.
(promtool checks the rendered files in the render tier; tests/e2e/test_monitoring.py runs
them.)"""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from tests.unit.test_native_services import (
    FRONT_DOOR,
    ROOT,
    STACK_DIR,
    USERS,
    _config,
    native,
    stack,
)

RULES_TEXT = (ROOT / "monitoring/rules/r1deploy.rules.yml").read_text()
MONITORING = {
    "enabled": True,
    "bind_address": "127.0.0.1",
    "prometheus_port": 9090,
    "alertmanager_port": 9093,
    "node_exporter_port": 9100,
    "blackbox_exporter_port": 9115,
    "dcgm_exporter_address": "",
    "scrape_interval_s": 15,
    "retention_time": "15d",
    "retention_size": "5GB",
    "ttft_p95_slo_s": 2,
    "alert_for": {},
    "receiver": {},
    "route": {},
}
MONITORING_USERS = {
    "prometheus": "r1deploy-prometheus",
    "alertmanager": "r1deploy-alertmanager",
    "node-exporter": "r1deploy-node-exporter",
    "blackbox-exporter": "r1deploy-blackbox-exporter",
}


def config(
    runtime: str = "native",
    engine: str = "vllm",
    front_door: bool = True,
    profile: str = "cpu",
    **more,
):
    c = _config(profile, engine={"engine": engine})
    c["runtime"] = runtime
    c["stack_dir"] = STACK_DIR
    c["monitoring"] = MONITORING | more
    c["images"] |= {
        "front_door": "nginx:1.22.1",
        "prometheus": "prom/prometheus:v2.42.0",
        "alertmanager": "prom/alertmanager:v0.25.0",
        "node_exporter": "prom/node-exporter:v1.5.0",
        "blackbox_exporter": "prom/blackbox-exporter:v0.23.0",
        "dcgm_exporter": "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04",
    }
    c["front_door"] = FRONT_DOOR | {"enabled": front_door}
    return c


def services(c: dict, digest: str = "") -> dict:
    compose = json.loads(json.dumps(stack.r1_stack_compose(c)))
    opts = {
        "stack_dir": STACK_DIR,
        "stack_mount": "/stack",
        "venvs": {"vllm": "/v/vllm", "open-webui": "/v/webui", "r1deploy": "/v/r1"},
        "model_path": "",
        "users": USERS | MONITORING_USERS,
        "monitoring_files_sha256": digest,
    }
    dotenv = native.r1_native_parse_dotenv(
        "VLLM_API_KEY='k'\nWEBUI_SECRET_KEY='s'\n"
        "WEBUI_ADMIN_EMAIL='a@b'\nWEBUI_ADMIN_PASSWORD='p'\n"
        "WEBUI_ADMIN_NAME='A'\nTOOLS_GATEWAY_KEY='g'\n"
    )
    return native.r1_native_services(compose, stack.r1_stack_settings(c), dotenv, opts)


def scrape_targets(c: dict) -> dict:
    prometheus = stack.r1_stack_prometheus_config(c)
    return {
        job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]
    }


def scrape_job(c: dict, name: str) -> dict:
    jobs = stack.r1_stack_prometheus_config(c)["scrape_configs"]
    return next(job for job in jobs if job["job_name"] == name)


def rule_groups(c: dict) -> list:
    return [g["name"] for g in stack.r1_stack_alert_rules(RULES_TEXT, c)["groups"]]


def test_prometheus_scrapes_every_service_on_the_host_for_the_native_runtime():
    c = config()
    assert scrape_targets(c) == {
        "vllm": ["127.0.0.1:8000"],
        "tools-gateway": ["127.0.0.1:8090"],
        "node": ["127.0.0.1:9100"],
        "prometheus": ["127.0.0.1:9090"],
        "alertmanager": ["127.0.0.1:9093"],
        # The blackbox exporter probes the front door (its listen address: all of them).
        "front-door": ["https://127.0.0.1:443/front-door-health"],
    }
    prometheus = stack.r1_stack_prometheus_config(c)
    assert prometheus["rule_files"] == ["rules/*.yml"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]


def test_prometheus_scrapes_the_compose_services_by_name_for_the_docker_runtime():
    c = config(runtime="docker")
    c["profile"] = "gpu"
    assert scrape_targets(c)["vllm"] == ["vllm:8000"]
    assert scrape_targets(c)["node"] == ["node-exporter:9100"]


def test_a_llamacpp_model_server_is_not_scraped_and_its_rules_are_left_out():
    c = config(engine="llama_cpp")
    assert "vllm" not in scrape_targets(c)
    groups = [g["name"] for g in stack.r1_stack_alert_rules(RULES_TEXT, c)["groups"]]
    assert "r1deploy-model-server" not in groups and "r1deploy-tool-gateway" in groups


def test_the_inventory_sets_an_alerts_for_duration_and_the_ttft_objective():
    c = config(alert_for={"VllmDown": "30s"}, ttft_p95_slo_s=3.5)
    rules = {
        r["alert"]: r
        for g in stack.r1_stack_alert_rules(RULES_TEXT, c)["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert rules["VllmDown"]["for"] == "30s"
    assert rules["NoModelServerReady"]["for"] == "2m"  # the rules file's
    assert rules["VllmTtftSloBreached"]["expr"].rstrip().endswith(") > 3.5")
    # The rendered rules are YAML Prometheus reads, with the templates of the annotations kept.
    text = yaml.safe_dump(stack.r1_stack_alert_rules(RULES_TEXT, config()))
    assert "{{ $labels.instance }}" in text


def test_an_alert_name_the_rules_do_not_have_is_refused_with_the_names_they_do():
    with pytest.raises(ValueError, match=r"r1_stack_alert_for names no alert .*: VllmDwn\. Fix"):
        stack.r1_stack_alert_rules(RULES_TEXT, config(alert_for={"VllmDwn": "1m"}))


def test_alertmanager_sends_to_the_inventorys_receiver_with_its_route_settings():
    c = config(
        receiver={"webhook_configs": [{"url": "https://hooks.example/r1"}]},
        route={"group_wait": "5s"},
    )
    am = stack.r1_stack_alertmanager_config(c)
    assert am["receivers"] == [
        {"name": "r1deploy", "webhook_configs": [{"url": "https://hooks.example/r1"}]}
    ]
    assert am["route"]["receiver"] == "r1deploy"
    assert am["route"]["group_wait"] == "5s" and am["route"]["repeat_interval"] == "4h"
    # No receiver given: one with nothing to send to (alerts are only shown).
    assert stack.r1_stack_alertmanager_config(config())["receivers"] == [{"name": "r1deploy"}]


def test_the_front_door_lets_ops_in_by_the_monitoring_password_only():
    line = stack.r1_stack_monitoring_auth_map("pw-1")
    assert line == f'"Basic {base64.b64encode(b"ops:pw-1").decode()}" ops;\n'
    door = stack.r1_stack_front_door(config())
    assert [m["path"] for m in door["monitoring"]] == ["/prometheus/", "/alertmanager/"]
    assert [m["upstream"] for m in door["monitoring"]] == ["127.0.0.1:9090", "127.0.0.1:9093"]
    assert stack.r1_stack_front_door(config(enabled=False))["monitoring"] == []


def test_settings_say_where_prometheus_is_and_its_external_url_behind_the_front_door():
    settings = stack.r1_stack_settings(config())["monitoring"]
    assert settings["prometheus_url"] == "http://127.0.0.1:9090"
    assert settings["external_url"]["prometheus"] == "https://chat.example.org/prometheus/"
    assert settings["user"] == "ops" and settings["password_env"] == "MONITORING_PASSWORD"
    assert "--web.external-url=https://chat.example.org/prometheus/" in settings["prometheus_args"]
    without_door = stack.r1_stack_settings(config(front_door=False))["monitoring"]
    assert "external_url" not in without_door
    assert not any(a.startswith("--web.external-url") for a in without_door["prometheus_args"])
    assert stack.r1_stack_settings(config(enabled=False))["monitoring"] == {"enabled": False}


def test_compose_publishes_the_monitoring_services_on_loopback_only():
    compose = stack.r1_stack_compose(config(runtime="docker"))
    for name, port in (("prometheus", 9090), ("alertmanager", 9093), ("node-exporter", 9100)):
        assert compose["services"][name]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert {"prometheus-data", "alertmanager-data"} <= set(compose["volumes"])


def test_the_native_runtime_runs_debians_programs_with_the_compose_flags_before_the_door():
    result = services(config(), digest="d1")
    assert list(result)[-5:] == [
        "node-exporter",
        "blackbox-exporter",
        "alertmanager",
        "prometheus",
        "front-door",
    ]
    prometheus = result["prometheus"]
    assert prometheus["argv"][:3] == [
        "/usr/bin/prometheus",
        f"--config.file={STACK_DIR}/monitoring/prometheus.yml",
        f"--storage.tsdb.path={STACK_DIR}/data/prometheus",
    ]
    assert "--storage.tsdb.retention.time=15d" in prometheus["argv"]
    assert prometheus["argv"][-1] == "--web.listen-address=127.0.0.1:9090"
    assert prometheus["health_url"] == "http://127.0.0.1:9090/-/ready"
    assert prometheus["user"] == "r1deploy-prometheus"
    assert prometheus["writable"] == [f"{STACK_DIR}/data/prometheus"]
    # A changed configuration or rule changes its environment file: it restarts.
    assert prometheus["env"] == {"R1DEPLOY_MONITORING_FILES": "d1"}
    alertmanager = result["alertmanager"]
    assert "--cluster.listen-address=" in alertmanager["argv"]
    assert alertmanager["argv"][-1] == "--web.listen-address=127.0.0.1:9093"
    node = result["node-exporter"]
    assert node["argv"] == [
        "/usr/bin/prometheus-node-exporter",
        "--web.listen-address=127.0.0.1:9100",
    ]
    assert node["writable"] == [] and node["env"] == {}


def test_without_monitoring_the_native_runtime_runs_none_of_it():
    result = services(config(enabled=False))
    assert not {"prometheus", "alertmanager", "node-exporter", "blackbox-exporter"} & set(result)


# --- The front door's probe (blackbox exporter) and the GPUs' exporter (DCGM) ---------------


def test_the_front_door_job_probes_it_over_https_through_the_blackbox_exporter():
    job = scrape_job(config(), "front-door")
    assert job["metrics_path"] == "/probe"
    assert job["params"] == {"module": ["front_door_https"]}
    # The usual relabelling: target -> ?target=, the instance label; the exporter is scraped.
    assert job["relabel_configs"] == [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": "127.0.0.1:9115"},
    ]
    compose_job = scrape_job(config(runtime="docker"), "front-door")
    assert compose_job["static_configs"][0]["targets"] == [
        "https://front-door:8443/front-door-health"
    ]
    assert compose_job["relabel_configs"][-1]["replacement"] == "blackbox-exporter:9115"


def test_the_probe_trusts_the_stacks_ca_and_checks_the_front_doors_name():
    native = stack.r1_stack_blackbox_config(config())["modules"]["front_door_https"]
    assert native["prober"] == "http"
    assert native["http"]["fail_if_not_ssl"] is True
    assert native["http"]["tls_config"] == {
        "server_name": "chat.example.org",
        "ca_file": f"{STACK_DIR}/front-door/tls/ca.crt",
    }
    assert "insecure_skip_verify" not in native["http"]["tls_config"]
    docker = stack.r1_stack_blackbox_config(config(runtime="docker"))
    ca = docker["modules"]["front_door_https"]["http"]["tls_config"]["ca_file"]
    service = stack.r1_stack_compose(config(runtime="docker"))["services"]["blackbox-exporter"]
    assert f"./front-door/tls/ca.crt:{ca}:ro" in service["volumes"]
    assert service["image"] == "prom/blackbox-exporter:v0.23.0"
    assert service["ports"] == ["127.0.0.1:9115:9115"]
    # A provided certificate: the system's roots.
    provided = config()
    provided["front_door"] = provided["front_door"] | {"tls_mode": "provided"}
    tls = stack.r1_stack_blackbox_config(provided)["modules"]["front_door_https"]["http"]
    assert tls["tls_config"] == {"server_name": "chat.example.org"}


def test_without_a_front_door_nothing_probes_it():
    c = config(front_door=False)
    assert "front-door" not in scrape_targets(c)
    assert "blackbox-exporter" not in stack.r1_stack_compose(c)["services"]
    assert "blackbox_exporter_url" not in stack.r1_stack_settings(c)["monitoring"]
    assert "blackbox-exporter" not in services(c)
    assert "front-door" in stack.r1_stack_settings(config())["monitoring"]["jobs"]


def test_the_native_runtime_runs_debians_blackbox_exporter_restarted_with_its_file():
    exporter = services(config(), digest="d2")["blackbox-exporter"]
    assert exporter["argv"] == [
        "/usr/bin/prometheus-blackbox-exporter",
        f"--config.file={STACK_DIR}/monitoring/blackbox.yml",
        "--web.listen-address=127.0.0.1:9115",
    ]
    assert exporter["user"] == "r1deploy-blackbox-exporter"
    assert exporter["health_url"] == "http://127.0.0.1:9115/-/healthy"
    assert exporter["writable"] == [] and exporter["env"] == {"R1DEPLOY_MONITORING_FILES": "d2"}


@pytest.mark.parametrize(
    ("runtime", "profile", "address", "dcgm", "service"),
    [
        # The docker runtime's GPU profile runs NVIDIA's exporter; scraped on the compose network.
        ("docker", "gpu", "", "dcgm-exporter:9400", True),
        # A native GPU host: the exporter it already runs, when the inventory names one.
        ("native", "gpu", "127.0.0.1:9400", "127.0.0.1:9400", False),
        ("native", "gpu", "", None, False),
        # No GPU: no DCGM, whatever is set.
        ("docker", "cpu", "", None, False),
        ("native", "cpu", "127.0.0.1:9400", None, False),
    ],
)
def test_dcgm_is_scraped_on_gpu_hosts_only_and_the_gpu_rules_with_it(
    runtime, profile, address, dcgm, service
):
    c = config(runtime=runtime, profile=profile, dcgm_exporter_address=address)
    assert scrape_targets(c).get("dcgm") == ([dcgm] if dcgm else None)
    assert ("r1deploy-gpu" in rule_groups(c)) == bool(dcgm)
    assert ("dcgm" in stack.r1_stack_settings(c)["monitoring"]["jobs"]) == bool(dcgm)
    assert ("dcgm-exporter" in stack.r1_stack_compose(c)["services"]) == service


def test_the_dcgm_exporter_reserves_the_gpus_vllm_is_given_and_publishes_nothing():
    c = config(runtime="docker", profile="gpu")
    c["gpu"] = {"driver": "nvidia", "device_ids": [0, 1]}
    compose = stack.r1_stack_compose(c)
    exporter = compose["services"]["dcgm-exporter"]
    assert exporter["image"] == "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04"
    devices = exporter["deploy"]["resources"]["reservations"]["devices"]
    assert devices == compose["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert "ports" not in exporter
    assert (
        "dcgm-exporter"
        not in stack.r1_stack_compose(config(runtime="docker", profile="gpu", enabled=False))[
            "services"
        ]
    )
