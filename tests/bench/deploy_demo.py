"""Deploy figures on this host (make bench-deploy): `make demo` cold and warm, and the time
each native service takes from start to healthy.

    cold    make destroy PURGE=1, then make demo (pip cache warm; environments, secrets,
            model and data built from nothing). Only with COLD=1: it takes minutes.
    warm    make demo again on the running stack: a no-op (changed=0). Target: < 20 s.
    start   make down, then each service started alone: seconds from its process start to
            its first healthy answer (r1ctl wait reads the process's age at that moment).

Prints a table and writes build/bench/deploy.json.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STACK = Path(os.environ.get("R1DEPLOY_STACK_DIR", "/opt/r1deploy"))
R1CTL = STACK / "native" / "r1ctl"
SERVICES = ["vllm", "tools-gateway", "open-webui", "front-door"]
WARM_RUNS = int(os.environ.get("WARM_RUNS", "3"))


def make(*args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(
            f"make {' '.join(args)} failed (rc {result.returncode}):\n"
            + result.stdout[-4000:]
            + result.stderr[-2000:]
        )
    return seconds, result.stdout


def changed(output: str) -> int:
    match = re.search(r"^localhost\s*:.*changed=(\d+)", output, re.MULTILINE)
    return int(match.group(1)) if match else -1


def start_to_healthy(service: str) -> float:
    subprocess.run([R1CTL, "start", service], check=True, capture_output=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        result = subprocess.run([R1CTL, "wait", service, "10"], capture_output=True, text=True)
        if result.returncode == 0:
            return float(re.search(r"up (\d+)s", result.stdout).group(1))
        if result.returncode == 4:
            sys.exit(f"{service} exited during start:\n{result.stderr}")
    sys.exit(f"{service} not healthy after 900 s")


def main() -> int:
    figures: dict = {"host_cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}
    if os.environ.get("COLD") == "1":
        make("destroy", "PURGE=1")
        figures["cold_demo_s"], out = make("demo")
        print(f"cold make demo: {figures['cold_demo_s']:.0f} s")
    else:
        seconds, out = make("demo")
        print(f"make demo (bring up, not the cold figure): {seconds:.0f} s, changed={changed(out)}")
    warm = []
    for _ in range(WARM_RUNS):
        seconds, out = make("demo")
        warm.append(seconds)
        figures.setdefault("warm_changed", []).append(changed(out))
    figures["warm_demo_s"] = {
        "runs": [round(s, 1) for s in warm],
        "median": round(statistics.median(warm), 1),
    }
    make("down")
    figures["start_to_healthy_s"] = {s: start_to_healthy(s) for s in SERVICES}
    # Back to the state make demo leaves (and its checks) after the measurement.
    make("demo")

    print("\nfigure                               value")
    if "cold_demo_s" in figures:
        print(f"cold make demo                       {figures['cold_demo_s']:.0f} s")
    print(
        f"warm make demo (no-op), median       {figures['warm_demo_s']['median']} s "
        f"(runs {figures['warm_demo_s']['runs']}, changed {figures['warm_changed']}; "
        "target < 20 s)"
    )
    for service, seconds in figures["start_to_healthy_s"].items():
        print(f"start to healthy: {service:<18} {seconds:.0f} s")
    print(
        f"(host: {figures['host_cpus']} CPUs, "
        f"1-min load at start {figures['load_avg_1m_at_start']:.1f})"
    )
    out_dir = ROOT / "build" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "deploy.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
