"""Running the Makefile's deploy targets as ops do, and reading what they print."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str, timeout: int = 3600, checkout: Path = ROOT) -> subprocess.CompletedProcess:
    """`make ARGS...` from the checkout (another clone: with this checkout's .venv, which
    make then leaves alone), uncoloured; prints how long it took."""
    started = time.monotonic()
    if checkout != ROOT:
        venv = ROOT / ".venv"
        args = (f"VENV={venv}", "-o", str(venv / ".installed"), *args)
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1"),
    )
    result.seconds = time.monotonic() - started
    print(f"make {' '.join(args)}: rc={result.returncode} in {result.seconds:.0f}s")
    return result


def recap(output: str, host: str = "localhost") -> dict:
    """The PLAY RECAP counters of host."""
    match = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", output, re.MULTILINE)
    assert match, "no PLAY RECAP in the output:\n" + output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
