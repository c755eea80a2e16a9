"""Benchmark: how long `r1deploy doctor` takes on a live stack (goal: under 5 s when healthy).

Runs the doctor ROUNDS times against the stack at R1DEPLOY_STACK_DIR (default /opt/r1deploy,
as `make demo` leaves it; run as root, which reads its .env and logs), in a new process each
time as `make doctor-here` does, and prints the median wall time of the whole run (process
start included), the doctor's own `wall_s`, the slowest checks and the verdict counts, so a
figure taken on an unhealthy stack says so. Without a deployed stack it says what to do and
measures nothing. Printed, never failed on.

    PYTHONPATH=. .venv/bin/python -m tests.bench.doctor_speed
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STACK = Path(os.environ.get("R1DEPLOY_STACK_DIR", "/opt/r1deploy"))
ROUNDS = int(os.environ.get("R1DEPLOY_BENCH_ROUNDS", "5"))
GOAL_S = 5.0


def one_run() -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "doctor",
            "--stack-dir",
            str(STACK),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"doctor could not run (exit {done.returncode}): {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    if not (STACK / "settings.json").is_file():
        print(
            f"doctor speed: no deployed stack at {STACK} (make demo first, or set "
            "R1DEPLOY_STACK_DIR): nothing measured"
        )
        return
    runs = [one_run() for _ in range(ROUNDS)]
    walls = [wall for wall, _ in runs]
    report = runs[-1][1]
    inner = statistics.median(r["wall_s"] for _, r in runs)
    slowest = sorted(report["checks"], key=lambda c: c["duration_s"], reverse=True)[:5]
    counts = report["counts"]
    unhealthy = "" if counts["fail"] == 0 else " (not a healthy stack: not the goal's figure)"
    print(
        f"doctor on {STACK}, {ROUNDS} runs: median {statistics.median(walls):.2f} s per run "
        f"(process included; the checks themselves {inner:.2f} s), goal under {GOAL_S:.0f} s: "
        f"{'met' if statistics.median(walls) < GOAL_S else 'NOT met'}"
    )
    print(
        f"  verdicts: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail, "
        f"{counts['skip']} skip{unhealthy}"
    )
    for check in slowest:
        print(f"  {check['duration_s']:6.3f} s  {check['id']} ({check['status']})")


if __name__ == "__main__":
    main()
