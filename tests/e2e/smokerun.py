"""Run the real `r1deploy smoke` CLI and read its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SmokeRun:
    exit_code: int
    report: dict
    table: str

    def check(self, name: str) -> dict:
        for check in self.report["checks"]:
            if check["name"] == name:
                return check
        raise KeyError(name)

    def status(self, name: str) -> str:
        return self.check(name)["status"]

    def statuses(self) -> dict[str, str]:
        return {c["name"]: c["status"] for c in self.report["checks"]}


def run_smoke(stack_dir: Path, *extra: str, timeout: float = 300) -> SmokeRun:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "smoke",
            "--stack-dir",
            str(stack_dir),
            "--format",
            "json",
            "--timeout",
            "60",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(
            f"smoke printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from None
    return SmokeRun(done.returncode, report, done.stderr)
