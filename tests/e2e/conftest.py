"""Session fixtures of the real-server tier: the test models, a stack directory, and the
real vLLM and Open WebUI started once from it (make test-e2e)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1deploy.tools.validate import load_plugins
from tests.e2e import stack as stacklib
from tests.support.stub_upstream import StubUpstream

REPO = stacklib.REPO
BUILD = REPO / "build" / "e2e"
# Servers listen on loopback ports PORT_BASE .. PORT_BASE+9; the llama.cpp stack's on
# PORT_BASE+10 .. +12 (tests/e2e/llamacpp_fixtures.py).
PORT_BASE = int(os.environ.get("R1DEPLOY_E2E_PORT_BASE", "18000"))
VLLM_PORT, WEBUI_PORT, GATEWAY_PORT = PORT_BASE, PORT_BASE + 1, PORT_BASE + 4
FRONT_DOOR_PORTS = (PORT_BASE + 7, PORT_BASE + 8)  # https, http
FAULT_WEBUI_PORTS = {"wrong_backend": PORT_BASE + 2, "openai_base_url": PORT_BASE + 3}
# Prometheus, Alertmanager, node and blackbox exporters (the llama.cpp stack has
# PORT_BASE+10 .. +12).
MONITORING_PORTS = {
    "prometheus": PORT_BASE + 13,
    "alertmanager": PORT_BASE + 14,
    "node": PORT_BASE + 15,
    "blackbox": PORT_BASE + 16,
}
# Alertmanager's webhook receiver: the stand-in upstream records what it is sent.
ALERT_WEBHOOK_PATH = "/echo/alertmanager"
CLOSED_PORT = PORT_BASE + 9  # nothing listens here: a wrong backend URL
VLLM_READY_S, WEBUI_READY_S = 600, 300


# Server start-up times of this run, written to build/e2e/timings.json for CI.
TIMINGS: dict[str, float] = {}


def pytest_sessionfinish(session):
    if TIMINGS:
        BUILD.mkdir(parents=True, exist_ok=True)
        (BUILD / "timings.json").write_text(stacklib.json.dumps(TIMINGS, indent=2) + "\n")


def pytest_collection_modifyitems(items):
    # Tests that stop a shared server run last, so the others see a whole stack.
    items.sort(key=lambda item: item.get_closest_marker("stops_servers") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "stops_servers: stops a session server; runs last")


def _sources_digest() -> str:
    digest = hashlib.sha256()
    sources = [
        *(REPO / "r1deploy" / "testmodel").glob("*.*"),
        REPO / "r1deploy" / "model_facts.json",
    ]
    for path in sorted(sources):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_test_model(kind: str) -> Path:
    """Build (or reuse, when the builder is unchanged) a test model under build/e2e."""
    out = BUILD / "models" / kind
    stamp = out / ".built-from"
    digest = _sources_digest()
    if stamp.is_file() and stamp.read_text() == digest:
        return out
    subprocess.run(
        [sys.executable, "-m", "r1deploy.cli", "testmodel", "build", str(out), "--kind", kind],
        check=True,
        cwd=REPO,
    )
    stamp.write_text(digest)
    return out


@pytest.fixture(scope="session")
def scripted_model() -> Path:
    return build_test_model("scripted")


@pytest.fixture(scope="session")
def random_model() -> Path:
    return build_test_model("random")


@pytest.fixture(scope="session")
def stack_upstream():
    """The weather API stand-in the stack's gateway calls (the plugin's base_url_env)."""
    with StubUpstream() as stub:
        yield stub


@pytest.fixture(scope="session")
def stack_tools_file(tmp_path_factory) -> Path:
    """The shipped tools.json, whose weather plugin may reach the loopback stand-in."""
    plugins = load_plugins(str(REPO / "tools.json"))
    for plugin in plugins:
        if plugin["name"] == "get_weather":
            plugin["allow_private_network"] = True
    path = tmp_path_factory.mktemp("tools") / "tools.json"
    path.write_text(stacklib.json.dumps(plugins, indent=2))
    return path


def stack_render_args(tools_file: Path, upstream_url: str) -> dict:
    """render_test_stack's arguments for this tier's stack (a test that renders it again,
    with one thing changed, starts from these)."""
    return dict(
        vllm_port=VLLM_PORT,
        webui_port=WEBUI_PORT,
        gateway_port=GATEWAY_PORT,
        tools_file=tools_file,
        front_door_ports=FRONT_DOOR_PORTS,
        # Monitoring with this tier's ports, scraping every 2 s, and alerts that fire and
        # reach the webhook within seconds (tests/e2e/test_monitoring.py).
        r1_stack_prometheus_port=MONITORING_PORTS["prometheus"],
        r1_stack_alertmanager_port=MONITORING_PORTS["alertmanager"],
        r1_stack_node_exporter_port=MONITORING_PORTS["node"],
        r1_stack_blackbox_exporter_port=MONITORING_PORTS["blackbox"],
        r1_stack_monitoring_scrape_interval_s=2,
        r1_stack_alert_for={"VllmDown": "4s", "NoModelServerReady": "4s"},
        r1_stack_alert_receiver={"webhook_configs": [{"url": upstream_url + ALERT_WEBHOOK_PATH}]},
        r1_stack_alert_route={"group_wait": "1s", "group_interval": "1s"},
    )


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory, stack_tools_file, stack_upstream) -> Path:
    return stacklib.render_test_stack(
        tmp_path_factory.mktemp("stack"), **stack_render_args(stack_tools_file, stack_upstream.url)
    )


@pytest.fixture(scope="session")
def stack_services(stack_dir, scripted_model, stack_upstream) -> dict:
    services = stacklib.native_services(
        stack_dir,
        scripted_model,
        {"tools-gateway": {"R1_WEATHER_BASE_URL": f"{stack_upstream.url}/weather"}},
    )
    for name, service in services.items():
        # Where the native runtime keeps each log, which the doctor reads.
        service["log"] = stack_dir / "native" / "logs" / f"{name}.log"
    return services


def native_server(name: str, service: dict) -> stacklib.Server:
    return stacklib.Server(
        name,
        service["argv"],
        service["env"],
        service["health_url"],
        service.get("log") or BUILD / "logs" / f"{name}.log",
        Path(service["workdir"]),
        verify=service.get("verify", True),
    )


def _start(server: stacklib.Server, timeout_s: float) -> stacklib.Server:
    server.start()
    try:
        TIMINGS[f"{server.name}_healthy_s"] = round(server.wait_healthy(timeout_s), 1)
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def vllm_server(stack_services):
    server = _start(native_server("vllm", stack_services["vllm"]), VLLM_READY_S)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway_server(stack_services):
    server = _start(native_server("tools-gateway", stack_services["tools-gateway"]), 60)
    yield server
    server.stop()


def webui_server(name: str, stack: Path, port: int, data_dir: Path, **env_overrides):
    """Another Open WebUI with the stack's environment (and overrides) in its own data dir."""
    return stacklib.Server(
        name,
        [str(stacklib.WEBUI_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        stacklib.webui_env(stack, data_dir, **env_overrides),
        f"http://127.0.0.1:{port}/health",
        BUILD / "logs" / f"{name}.log",
        BUILD / "run" / name,
    )


@pytest.fixture(scope="session")
def webui(stack_services, vllm_server, gateway_server):
    server = _start(native_server("open-webui", stack_services["open-webui"]), WEBUI_READY_S)
    yield server
    server.stop()


def reconcile(stack: Path) -> dict:
    """`r1deploy webui reconcile` on the stack, as every deploy runs it; its JSON outcome."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "webui",
            "reconcile",
            "--stack-dir",
            str(stack),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return stacklib.json.loads(done.stdout)


@pytest.fixture(scope="session")
def front_door(stack_services, webui):
    server = _start(native_server("front-door", stack_services["front-door"]), 60)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def monitoring(stack_dir, stack_services, vllm_server, gateway_server):
    """Node exporter, the blackbox exporter, Alertmanager and Prometheus (Debian's) as the
    native runtime runs them: their settings.json URLs. (The blackbox exporter's probe of the
    front door succeeds once a test starts the front door.)"""
    servers = []
    try:
        for name in ("node-exporter", "blackbox-exporter", "alertmanager", "prometheus"):
            servers.append(_start(native_server(name, stack_services[name]), 60))
        yield stacklib.read_settings(stack_dir)["monitoring"]
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture(scope="session")
def stack(stack_dir, vllm_server, gateway_server, webui, front_door):
    """The whole stack up and reconciled, as a deploy leaves it: the stack directory."""
    TIMINGS["first_reconcile_changed"] = reconcile(stack_dir)["changed"]
    return stack_dir


def fault_stack(stack_dir: Path, tmp_path: Path, webui_port: int) -> Path:
    """A copy of the stack directory whose settings point at another Open WebUI."""
    copy = tmp_path / "stack"
    subprocess.run(["cp", "-a", str(stack_dir), str(copy)], check=True)
    settings = stacklib.read_settings(copy)
    settings["webui"]["url"] = f"http://127.0.0.1:{webui_port}"
    (copy / "settings.json").write_text(stacklib.json.dumps(settings, indent=2))
    return copy
