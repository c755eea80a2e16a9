"""The deploy tier: the native runtime serving the test model with llama.cpp, for real.

playbooks/site.yml on this host, as `make deploy` runs it, with the demo's variables
(native runtime, the scripted test model) and `r1_stack_cpu_engine: llama_cpp`: llama-server
copied from the host's cached build (or compiled), the test model converted to GGUF on the
host, Open WebUI, the tool gateway and the front door; the deploy's own smoke passes, a
second run changes nothing and restarts nothing, and `make destroy PURGE=1` removes it.

It never meets the main demo (tests/deploy/test_native_demo.py: /opt/r1deploy on 8000, 3000,
8090, 8443, 8080): its own inventory (this host renamed, so its secrets are its own), stack
directory, ports, service users and service names.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from r1deploy.llamacpp import pins
from tests.deploy.runs import ROOT, assert_ok, make, recap

HOST = "llamacpp-local"
STACK = Path("/opt/r1deploy-llamacpp")
R1CTL = STACK / "native" / "r1ctl"
SECRETS = ROOT / "secrets" / HOST
MODEL_API, WEBUI, GATEWAY, HTTPS, HTTP = 28000, 23000, 28090, 28443, 28080
SERVICES = ["vllm", "tools-gateway", "open-webui", "front-door"]
# The demo's environments (r1_native_venvs_dir), shared: Open WebUI's and r1deploy's are
# installed once for both stacks, and the llama.cpp build is copied next to them.
VENVS = Path("/opt/r1deploy/venvs")
USERS = {
    "vllm": "r1llama-llamacpp",
    "tools-gateway": "r1llama-gateway",
    "open-webui": "r1llama-webui",
}
OVERRIDES = f"""\
r1_stack_dir: {STACK}
r1_stack_cpu_engine: llama_cpp
r1_stack_vllm_port: {MODEL_API}
r1_stack_webui_port: {WEBUI}
r1_stack_gateway_port: {GATEWAY}
r1_stack_front_door_https_port: {HTTPS}
r1_stack_front_door_http_port: {HTTP}
r1_native_unit_prefix: r1llama
r1_native_llamacpp_user: {USERS["vllm"]}
r1_native_gateway_user: {USERS["tools-gateway"]}
r1_native_webui_user: {USERS["open-webui"]}
r1_native_venvs_dir: {VENVS}
# The demo's Prometheus is the one on this host (llama-server's metrics need the key).
r1_stack_monitoring_enabled: false
"""

pytestmark = pytest.mark.deploy


@pytest.fixture(scope="module")
def deploy_args(tmp_path_factory) -> list[str]:
    """`make deploy` arguments: this host renamed in a copy of inventory/local, the demo's
    variables, then this stack's (later -e wins)."""
    tmp = tmp_path_factory.mktemp("llamacpp-deploy")
    inventory = tmp / "inventory"
    shutil.copytree(ROOT / "inventory" / "local", inventory)
    hosts = inventory / "hosts.yml"
    text = hosts.read_text()
    assert "\n    localhost:\n" in text
    hosts.write_text(text.replace("\n    localhost:\n", f"\n    {HOST}:\n"))
    overrides = tmp / "llamacpp.yml"
    overrides.write_text(OVERRIDES)
    return [
        f"INVENTORY={inventory}",
        f"ARGS=-e @{ROOT / 'playbooks/vars/demo.yml'} -e @{overrides}",
    ]


def _destroy(args: list[str]) -> None:
    assert_ok(make("destroy", "PURGE=1", *args))
    for user in USERS.values():
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)


@pytest.fixture(scope="module")
def deployed(deploy_args):
    _destroy(deploy_args)
    assert not STACK.exists() and not SECRETS.exists()
    result = make("deploy", *deploy_args)
    yield result
    _destroy(deploy_args)
    assert not STACK.exists() and not SECRETS.exists()


def pids() -> dict:
    out = {}
    for service in SERVICES:
        result = subprocess.run([R1CTL, "pid", service], capture_output=True, text=True)
        out[service] = result.stdout.strip() if result.returncode == 0 else None
    return out


def test_the_deploy_serves_the_test_model_with_llama_cpp_and_its_smoke_passes(deployed):
    assert_ok(deployed)
    out = deployed.stdout
    print(f"deploy: {deployed.seconds:.0f} s")
    build = pins.load().build_info
    assert f"{HOST}: native runtime" in out
    # The summary line of the model server: engine, build (from /props), GGUF source.
    assert re.search(
        rf"model server: llama\.cpp {build} \(x86-64-v3 build in {VENVS}/llama\.cpp-", out
    )
    assert "(convert); engine llama_cpp: set by r1_stack_cpu_engine" in out
    # llama.cpp's build beside the shared environments; no environment of its own.
    venvs = sorted(p.name for p in VENVS.iterdir() if p.is_dir())
    assert any(v.startswith(f"llama.cpp-{pins.load().build_tag}-") for v in venvs), venvs
    assert not (STACK / "venvs").exists()  # nothing of its own: the shared ones serve it
    for line in out.splitlines():
        if "model server: llama.cpp" in line or "copied from" in line or "built in" in line:
            print(line.strip())
    status = subprocess.run([R1CTL, "status", "vllm"], capture_output=True, text=True)
    assert re.search(rf"vllm: running \(pid \d+, since .*\): llama\.cpp {build} ", status.stdout)


def test_llama_server_runs_as_its_own_user_on_the_gguf_with_the_key_hidden(deployed):
    assert_ok(deployed)
    pid = pids()["vllm"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[0].decode().endswith("/bin/llama-server")
    model = argv[argv.index(b"--model") + 1].decode()
    assert model == f"{STACK}/models/gguf/r1deploy-test-model-Q4_K_M.gguf"
    assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam(USERS["vllm"]).pw_uid
    key = (SECRETS / "vllm_api_key").read_text().strip()
    assert key.encode() not in b" ".join(argv)
    base = f"http://127.0.0.1:{MODEL_API}"
    assert requests.get(f"{base}/props", timeout=10).status_code == 401
    props = requests.get(
        f"{base}/props", timeout=10, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert props["build_info"] == pins.load().build_info
    models = requests.get(
        f"{base}/v1/models", timeout=10, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert models["data"][0]["owned_by"] == "llamacpp"


def test_a_second_deploy_changes_nothing_and_restarts_nothing(deployed, deploy_args):
    assert_ok(deployed)
    before = pids()
    started = time.monotonic()
    result = make("deploy", *deploy_args)
    assert_ok(result)
    print(f"second deploy: {time.monotonic() - started:.0f} s")
    assert recap(result.stdout, HOST)["changed"] == 0, result.stdout[-6000:]
    assert pids() == before
    # The main demo's stack is not this one's.
    assert os.path.realpath(R1CTL).startswith(str(STACK))
