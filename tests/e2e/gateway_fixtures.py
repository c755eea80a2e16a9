"""Session fixtures for the gateway's e2e tests: a real Open WebUI, the real gateway process,
and a stack directory that points at them.

The weather API the shipped tools.json names is not reachable here: its plugin is sent to a
local stub through its ``base_url_env`` (R1_WEATHER_BASE_URL), the mechanism the file
provides for test doubles.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from r1deploy.tools.validate import load_plugins
from tests.support.processes import (
    OPEN_WEBUI_ENV,
    ServerProcess,
    require_env,
    start_gateway,
    start_on_free_port,
)
from tests.support.stub_upstream import StubUpstream

REPO = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@r1deploy.test"
TOOL_SERVER_ID = "r1deploy-tools"
WEBUI_SERVICE = "open-webui"


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gateway-e2e")


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    return {
        "TOOLS_GATEWAY_KEY": secrets.token_urlsafe(24),
        "VLLM_API_KEY": secrets.token_urlsafe(24),
        "WEBUI_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "WEBUI_SECRET_KEY": secrets.token_urlsafe(24),
    }


@pytest.fixture(scope="session")
def weather_stub():
    with StubUpstream() as stub:
        yield stub


@pytest.fixture(scope="session")
def tools_file(e2e_dir) -> Path:
    """The shipped tools.json; the weather plugin may reach the loopback stub."""
    plugins = load_plugins(str(REPO / "tools.json"))
    for plugin in plugins:
        if plugin["name"] == "get_weather":
            plugin["allow_private_network"] = True
    path = e2e_dir / "tools.json"
    path.write_text(json.dumps(plugins, indent=2))
    return path


@pytest.fixture(scope="session")
def gateway(e2e_dir, keys, weather_stub, tools_file):
    server, port = start_gateway(
        tools_file,
        e2e_dir,
        {
            "TOOLS_GATEWAY_KEY": keys["TOOLS_GATEWAY_KEY"],
            "R1_WEATHER_BASE_URL": f"{weather_stub.url}/weather",
        },
    )
    with server:
        server.url = f"http://127.0.0.1:{port}"
        yield server


@pytest.fixture(scope="session")
def open_webui(e2e_dir, keys):
    """A real Open WebUI, first started with an outdated configuration: a backend that does
    not exist, no tool server (what a previous deploy could have left)."""
    env_dir = require_env(OPEN_WEBUI_ENV)
    data = e2e_dir / "webui-data"
    data.mkdir()

    def build(port: int) -> ServerProcess:
        return ServerProcess(
            "open-webui",
            [
                str(env_dir / "bin" / "open-webui"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            f"http://127.0.0.1:{port}/health",
            e2e_dir,
            env={
                "DATA_DIR": str(data),
                "OFFLINE_MODE": "true",
                "RAG_EMBEDDING_MODEL": "",
                "ENABLE_OLLAMA_API": "false",
                "WEBUI_SECRET_KEY": keys["WEBUI_SECRET_KEY"],
                "WEBUI_ADMIN_EMAIL": ADMIN_EMAIL,
                "WEBUI_ADMIN_PASSWORD": keys["WEBUI_ADMIN_PASSWORD"],
                "WEBUI_ADMIN_NAME": "Admin",
                "OPENAI_API_BASE_URL": "http://127.0.0.1:9/v1",
                "OPENAI_API_KEY": "outdated",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            },
        )

    server, port = start_on_free_port(build, timeout_s=240)
    with server:
        server.url = f"http://127.0.0.1:{port}"
        yield server


@pytest.fixture(scope="session")
def vllm(stack_dir, vllm_server):
    """The session's real vLLM (tests/e2e/conftest.py): the scripted model served with the
    flags of the stack the role rendered, so the agent runs against what a deploy runs."""
    from tests.e2e import stack as stacklib

    settings = stacklib.read_settings(stack_dir)
    return SimpleNamespace(
        url=settings["vllm"]["url"],
        model=settings["model"]["served_name"],
        key=stacklib.read_env(stack_dir)["VLLM_API_KEY"],
    )


def tool_server_connection(gateway_url: str) -> dict:
    """The connection as roles/r1_stack renders it, the key left to compose interpolation."""
    return {
        "url": gateway_url,
        "path": "openapi.json",
        "type": "openapi",
        "auth_type": "bearer",
        "key": "${TOOLS_GATEWAY_KEY:?TOOLS_GATEWAY_KEY is missing from .env}",
        "config": {"enable": True},
        "info": {"id": TOOL_SERVER_ID, "name": "r1deploy tools"},
    }


def write_stack_dir(
    root: Path,
    keys: dict,
    *,
    webui_url: str,
    gateway_url: str,
    vllm_url: str,
    model: str,
    tools_file: Path,
) -> Path:
    """A stack directory in the shape of docs/stack-dir.md, for servers on loopback."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "schema_version": 1,
        # The desired state is read from compose.yaml's Open WebUI environment below.
        "runtime": "docker",
        "model": {"served_name": model},
        "vllm": {"url": vllm_url},
        "webui": {"service": WEBUI_SERVICE, "url": webui_url, "admin_email": ADMIN_EMAIL},
        "gateway": {"enabled": True, "url": gateway_url},
        "tools_file": "tools.json",
    }
    environment = {
        "OPENAI_API_BASE_URL": f"{vllm_url}/v1",
        "OPENAI_API_KEY": "${VLLM_API_KEY:?VLLM_API_KEY is missing from .env}",
        "ENABLE_SIGNUP": "false",
        "DEFAULT_MODELS": model,
        "TOOL_SERVER_CONNECTIONS": json.dumps([tool_server_connection(gateway_url)]),
    }
    compose = {"services": {WEBUI_SERVICE: {"image": "open-webui", "environment": environment}}}
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    (root / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))
    env_lines = [f"{name}='{value}'" for name, value in keys.items()]
    env_lines.append(f"WEBUI_ADMIN_EMAIL='{ADMIN_EMAIL}'")
    (root / ".env").write_text("\n".join(env_lines) + "\n")
    (root / ".env").chmod(0o600)
    (root / "tools.json").write_text(tools_file.read_text())
    return root
