"""`make bench` figures for `r1deploy bench`:

1. the client's own ceiling and overhead against an instant stub server (in its own process),
   as a multiple of what the tiny model reaches on vLLM CPU here (FACTS.md: ~21 req/s);
2. a short sweep against a real vLLM serving the tiny random model, when the cached vLLM env
   exists (else it says why it was skipped).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from r1deploy.bench import runner
from r1deploy.bench.target import Target
from tests.bench.vllm_tiny import REPO, CoreSplit, VllmServer, tiny_model, vllm_env_missing
from tests.stubs import instant_openai

TINY_MODEL_REQ_PER_S = 21.0


def client_ceiling() -> None:
    with instant_openai.running(REPO) as url:
        print(
            "client ceiling against the instant stub server (128 in / 64 out tokens, "
            "600 requests a level, stub in its own process):"
        )
        print(
            f"{'conc':>5} {'req/s':>8} {'x tiny':>7} {'out tok/s':>10} {'E2EL p50 ms':>12} "
            f"{'client CPU':>11} {'CPU ms/req':>11} {'req/CPU-s':>10} {'x tiny':>7} "
            f"{'loop lag p99 ms':>16} {'parse us/read':>14}"
        )
        sweep = runner.SweepSettings(
            output_len=64, input_len=128, concurrency=[8, 32, 64], num_prompts=600, warmup=8
        )
        result = runner.run(Target(base_url=url, model=None), sweep)
        for level in result["levels"]:
            m, o = level["metrics"], level["client_overhead"]
            print(
                f"{level['concurrency']:>5} {m['request_throughput']:>8.0f} "
                f"{m['request_throughput'] / TINY_MODEL_REQ_PER_S:>6.0f}x "
                f"{m['output_throughput']:>10.0f} {m['e2el']['median_ms']:>12.2f} "
                f"{o['cpu_fraction_of_one_core'] * 100:>10.0f}% "
                f"{o['cpu_ms_per_request']:>11.2f} {o['requests_per_cpu_second']:>10.0f} "
                f"{o['requests_per_cpu_second'] / TINY_MODEL_REQ_PER_S:>6.0f}x "
                f"{o['loop_lag']['p99_ms']:>16.2f} {o['parse_us_per_read']:>14.0f}"
            )
        print(
            f"(x tiny: multiple of the tiny model's ~{TINY_MODEL_REQ_PER_S:.0f} req/s on vLLM "
            "CPU here; client CPU: share of one core the client used; req/CPU-s: what one "
            "free core sustains)"
        )


def vllm_sweep() -> None:
    if reason := vllm_env_missing():
        print(f"real vLLM sweep: skipped: {reason}")
        return
    with tempfile.TemporaryDirectory(prefix="r1deploy-bench-") as tmp:
        try:
            model = tiny_model(Path(tmp))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"real vLLM sweep: skipped: no tiny model ({exc})")
            return
        print("real vLLM sweep (tiny random model, CPU; starting the server):", flush=True)
        build = REPO / "build"
        build.mkdir(exist_ok=True)
        cores = CoreSplit()  # server and client on cores of their own (see CoreSplit)
        with VllmServer(model, Path(tmp) / "vllm.log", cores=cores) as url:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "r1deploy.bench",
                    "run",
                    "--base-url",
                    url,
                    "--input-len",
                    "128",
                    "--output-len",
                    "64",
                    "--concurrency",
                    "1,4,8",
                    "--num-prompts",
                    "32",
                    "--quiet",
                    "--output",
                    str(build / "bench-sweep.json"),
                    "--plot",
                    str(build / "bench-sweep.png"),
                ],
                cwd=REPO,
                check=False,
                preexec_fn=cores.pin_clients,
            )


def main() -> None:
    client_ceiling()
    print()
    vllm_sweep()


if __name__ == "__main__":
    main()
