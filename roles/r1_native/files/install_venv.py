"""Install one virtual environment of the native runtime (roles/r1_native).

    python3 install_venv.py '{"venv": DIR, "steps": [[pip args], ...], "remove": [names],
                              "marker": TEXT}'

Creates the venv with this interpreter when it is missing or broken, runs `pip install`
once per step (in order: torch before Open WebUI), uninstalls `remove`, compiles the
bytecode, and writes TEXT to DIR/.r1deploy-installed only when everything succeeded, so an
interrupted install is finished by the next run. Output: pip's, with a timestamped line
per step (the role tees it to native/logs/install-<name>.log).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# --no-compile: pip byte-compiles one file at a time; compileall below uses every CPU. The
# pip cache (~/.cache/pip) stays on: reinstalls and other stacks on the host do not
# download again.
PIP = ["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
       "--no-compile"]


def log(message: str) -> None:
    print(f"=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}", flush=True)


def run(argv: list[str]) -> None:
    result = subprocess.run(argv)
    if result.returncode != 0:
        log(f"failed (exit {result.returncode}): {' '.join(argv)}")
        sys.exit(result.returncode)


def main() -> int:
    spec = json.loads(sys.argv[1])
    # Root installs, the services' users read: whatever root's umask, files are 0644.
    os.umask(0o022)
    venv = Path(spec["venv"])
    python = venv / "bin" / "python"
    marker = venv / ".r1deploy-installed"
    usable = python.exists() and subprocess.run(
        [python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if not usable:
        log(f"creating {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", str(venv)])
    marker.unlink(missing_ok=True)
    for step in spec["steps"]:
        log("pip install " + " ".join(step))
        run([str(python), *PIP, *step])
    if spec["remove"]:
        log(f"pip uninstall {' '.join(spec['remove'])} (CUDA builds that break imports on CPU)")
        run([str(python), "-m", "pip", "uninstall", "--disable-pip-version-check", "-y",
             *spec["remove"]])
    # The services run as users who cannot write into this (root's) venv, so Python could
    # not cache what it compiles: without this, every start compiles each imported module
    # again (vLLM's imports: 20 s instead of 8 on 2 CPUs). Some files in packages are not
    # Python 3 (templates, tests) and fail to compile; that is expected.
    log("compiling the bytecode")
    subprocess.run([str(python), "-m", "compileall", "-qq", "-j", "0", str(venv / "lib")])
    marker.write_text(spec["marker"] + "\n")
    log(f"done: {venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
