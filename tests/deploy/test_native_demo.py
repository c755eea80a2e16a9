"""The deploy tier: `make demo` and the day-2 targets on this host, for real.

Real Ansible runs of playbooks/site.yml against this host, with the native runtime: real
vLLM (CPU) serving the tiny test model, real Open WebUI, the real tool gateway. The tests
run in file order and build on each other (one deployment, operated as ops would):
from clean, re-run, down and up, inventory change, broken upgrade. They use the product's
default ports (8000, 3000, 8090; the front door on 8443 and 8080) and stack directory
(/opt/r1deploy). A person reaches it as the summary says: https://localhost:8443, trusting
the stack's CA.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import requests
from cryptography import x509
from playwright.sync_api import expect

from r1deploy.router import RouterSettings
from r1deploy.testmodel import script
from tests.deploy.acme_ca import pebble
from tests.deploy.runs import ROOT, assert_ok, make, recap
from tests.e2e import router_fixtures as rf
from tests.e2e.browser import Person, chromium

STACK = Path(os.environ.get("R1DEPLOY_STACK_DIR", "/opt/r1deploy"))
SECRETS = ROOT / "secrets" / "localhost"
R1CTL = STACK / "native" / "r1ctl"
# Open WebUI behind the front door, as the tests' API calls reach it on the host.
WEBUI = "http://127.0.0.1:3000"
# What the demo's summary gives a person, and the CA their browser is to trust.
FRONT_DOOR = "https://localhost:8443"
CA = STACK / "front-door" / "tls" / "ca.crt"
SERVICES = [
    "vllm",
    "tools-gateway",
    "open-webui",
    "node-exporter",
    "blackbox-exporter",
    "alertmanager",
    "prometheus",
    "front-door",
]
# Who runs each service (roles/r1_native's defaults) and the only directories it may write;
# the front door's master is root's (its workers are www-data: test below).
USERS = {
    "vllm": "r1deploy-vllm",
    "tools-gateway": "r1deploy-gateway",
    "open-webui": "r1deploy-webui",
    "node-exporter": "r1deploy-node-exporter",
    "blackbox-exporter": "r1deploy-blackbox-exporter",
    "alertmanager": "r1deploy-alertmanager",
    "prometheus": "r1deploy-prometheus",
}
DATA = {
    "vllm": ["hf-cache", "vllm-cache"],
    "tools-gateway": [],
    "open-webui": ["open-webui"],
    "node-exporter": [],
    "blackbox-exporter": [],
    "alertmanager": ["alertmanager"],
    "prometheus": ["prometheus"],
}
SHOTS = ROOT / "build" / "deploy" / "journeys"
# A dependency pin that breaks Open WebUI at import time (pydantic 1 under code written
# for pydantic 2): it installs, then the service never becomes healthy.
BROKEN_PINS = {"r1deploy_upgrade_pins": {"r1_native_webui_extra_packages": ["pydantic==1.10.22"]}}

pytestmark = pytest.mark.deploy


def pids() -> dict:
    return pids_of(*SERVICES)


def pids_of(*services: str) -> dict:
    out = {}
    for service in services:
        result = subprocess.run([R1CTL, "pid", service], capture_output=True, text=True)
        out[service] = result.stdout.strip() if result.returncode == 0 else None
    return out


def admin_token() -> str:
    password = (SECRETS / "webui_admin_password").read_text().strip()
    response = requests.post(
        f"{WEBUI}/api/v1/auths/signin",
        timeout=30,
        json={"email": "admin@r1deploy.local", "password": password},
    )
    response.raise_for_status()
    return response.json()["token"]


def tool_server_urls(token: str) -> list[str]:
    response = requests.get(
        f"{WEBUI}/api/v1/configs/tool_servers",
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return [c["url"] for c in response.json()["TOOL_SERVER_CONNECTIONS"]]


@pytest.fixture(scope="module", autouse=True)
def stop_the_stack_at_the_end():
    yield
    make("down")


def test_destroy_removes_a_half_deployed_stack():
    """A deploy cut off after the render (settings.json, no r1ctl yet) is removed cleanly."""
    assert_ok(make("destroy", "PURGE=1"))
    STACK.mkdir(parents=True)
    (STACK / "settings.json").write_text(json.dumps({"runtime": "native"}))
    result = make("destroy", "PURGE=1")
    assert_ok(result)
    assert not STACK.exists()


def test_demo_from_clean_passes_its_smoke():
    assert_ok(make("destroy", "PURGE=1"))
    assert not STACK.exists() and not SECRETS.exists()
    result = make("demo")
    assert_ok(result)
    out = result.stdout
    assert "runtime native" in out
    assert "Open WebUI: https://localhost:8443" in out
    assert f"import the stacks CA certificate, {CA}" in out
    assert "OpenAI-compatible API: https://localhost:8443/v1" in out
    assert "secrets/localhost/webui_admin_password" in out
    assert "Try it: sign in, type" in out
    assert "Monitoring: https://localhost:8443/prometheus/ and " in out
    assert re.search(r"Context: .*8192 tokens", out), out[-3000:]  # and why that many
    assert all(pid for pid in pids().values()), pids()


def uid_of(pid: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\t(\d+)\t", status, re.MULTILINE)[1])


def can(user: str, test: str, path: Path) -> bool:
    """Whether USER may read (-r) or write (-w) PATH."""
    return subprocess.run(["runuser", "-u", user, "--", "test", test, str(path)]).returncode == 0


def test_each_service_runs_as_its_own_user_owning_only_its_data():
    for service, pid in pids().items():
        if service not in USERS:
            continue
        user = pwd.getpwnam(USERS[service])
        assert uid_of(pid) == user.pw_uid, service
        for name in DATA[service]:
            data = STACK / "data" / name
            assert (data.stat().st_uid, data.stat().st_mode & 0o777) == (user.pw_uid, 0o700)
        env_file = STACK / "native" / "env" / f"{service}.env"
        assert can(USERS[service], "-r", env_file), service
        for other in set(USERS) - {service}:
            # Its secrets are not the other services' to read.
            assert not can(USERS[other], "-r", env_file), (other, service)
            for name in DATA[other]:
                assert not can(USERS[service], "-w", STACK / "data" / name), (service, name)
        assert not can(USERS[service], "-r", STACK / ".env"), service
        assert not can(USERS[service], "-w", STACK / "venvs"), service
        assert not can(USERS[service], "-w", STACK / "models" / "test"), service
        assert can(USERS["vllm"], "-r", STACK / "models" / "test" / "config.json")


# The chat a person starts in the demo, kept across down and up (test below).
FIRST_CHAT: dict = {}


def test_the_front_door_is_nginx_with_root_master_and_www_data_workers():
    master = int(pids()["front-door"])
    assert uid_of(str(master)) == 0
    workers = subprocess.run(
        ["pgrep", "-P", str(master)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert workers
    assert {uid_of(w) for w in workers} == {pwd.getpwnam("www-data").pw_uid}
    # Only its ports are open to the network; the services behind it listen on loopback.
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    public = {
        line.split()[3]
        for line in listening.splitlines()
        if line.split()[3].startswith(("0.0.0.0:", "*:", "[::]:"))
    }
    assert {"0.0.0.0:8443", "0.0.0.0:8080"} <= public, public
    assert not public & {"0.0.0.0:3000", "0.0.0.0:8000", "0.0.0.0:8090"}, public


def test_the_front_door_serves_the_ui_and_the_api_over_https_with_keys():
    ops_key = (SECRETS / "api_key_ops").read_text().strip()
    trust = ssl.create_default_context(cafile=CA)
    with httpx.Client(verify=trust, timeout=60) as http:
        assert http.get(f"{FRONT_DOOR}/health").status_code == 404  # the model server's
        assert http.get(f"{FRONT_DOOR}/auth").status_code == 200  # Open WebUI's page
        assert http.get(f"{FRONT_DOOR}/v1/models").status_code == 401
        models = http.get(f"{FRONT_DOOR}/v1/models", headers={"Authorization": f"Bearer {ops_key}"})
        assert models.status_code == 200, models.text
        assert [m["id"] for m in models.json()["data"]] == ["r1deploy-test-model"]
        redirect = http.get("http://localhost:8080/auth", follow_redirects=False)
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"{FRONT_DOOR}/auth"
    log = (STACK / "native" / "logs" / "front-door-access.log").read_text()
    assert "client=ops" in log and ops_key not in log


@pytest.fixture(scope="module")
def browser():
    # As a person who imported the stack's CA, as the summary says (no error ignored).
    with chromium(CA) as browser:
        yield browser


def admin_person(browser) -> Person:
    person = Person(browser, FRONT_DOOR, SHOTS, "demo-admin")
    person.sign_in("admin@r1deploy.local", (SECRETS / "webui_admin_password").read_text().strip())
    return person


def test_the_first_thing_a_person_types_in_the_demo_is_answered(browser):
    # What the summary tells a person to type first, typed into the demo's Open WebUI.
    person = admin_person(browser)
    try:
        message = person.ask(script.MATHS_PROMPT)
        assert message["content"] == script.MATHS.answer_text
        expect(person.last_answer().locator(".katex").first).to_be_visible()
        FIRST_CHAT["id"] = message["chat_id"]
    finally:
        person.close()


def test_second_demo_changes_nothing_and_restarts_nothing():
    before = pids()
    result = make("demo")
    assert_ok(result)
    assert recap(result.stdout)["changed"] == 0, result.stdout[-6000:]
    assert pids() == before


def test_status_shows_every_service_running_and_healthy():
    result = make("status")
    assert_ok(result)
    for service in SERVICES:
        assert re.search(rf"{service}: running \(pid \d+", result.stdout), result.stdout
    assert result.stdout.count("health: 200") == len(SERVICES), result.stdout


def test_prometheus_behind_the_front_door_sees_every_service_up_for_ops_only():
    password = (SECRETS / "monitoring_password").read_text().strip()
    trust = ssl.create_default_context(cafile=CA)
    url = f"{FRONT_DOOR}/prometheus/api/v1/targets"
    with httpx.Client(verify=trust, timeout=30) as http:
        assert http.get(url).status_code == 401
        deadline = time.monotonic() + 60
        while True:
            answer = http.get(url, auth=("ops", password))
            assert answer.status_code == 200, answer.text
            health = {
                t["labels"]["job"]: t["health"] for t in answer.json()["data"]["activeTargets"]
            }
            if set(health.values()) == {"up"} or time.monotonic() > deadline:
                break
            time.sleep(2)
        # The blackbox exporter's probe of the front door over HTTPS, trusting the stack's CA.
        probe = http.get(
            f"{FRONT_DOOR}/prometheus/api/v1/query",
            params={"query": 'probe_success{job="front-door"}'},
            auth=("ops", password),
        ).json()["data"]["result"]
    assert health == dict.fromkeys(
        ["vllm", "tools-gateway", "node", "front-door", "prometheus", "alertmanager"], "up"
    ), health
    assert [s["value"][1] for s in probe] == ["1"], probe


def served_certificate(port: int = 8443) -> x509.Certificate:
    """The certificate the front door presents (not checked: read)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_acme_gets_the_front_doors_certificate_from_an_acme_ca_and_keeps_it(tmp_path):
    # pebble (Let's Encrypt's test server) checks the HTTP-01 challenge on the front door's
    # HTTP port, as Let's Encrypt would on port 80.
    own_ca_issuer = served_certificate().issuer
    # A certificate from an earlier run's pebble chains to a root this one does not have.
    for leftover in (STACK / "acme", STACK / "front-door" / "acme"):
        shutil.rmtree(leftover, ignore_errors=True)
    with pebble(tmp_path, http_port=8080) as (directory, ca_bundle):
        acme = (
            f"ARGS=-e r1_stack_tls_mode=acme -e r1_stack_acme_directory={directory}"
            f" -e r1_stack_acme_ca_file={ca_bundle}"
        )
        result = make("demo", acme)
        assert_ok(result)  # its smoke went through the front door, trusting the ACME CA
        assert re.search(
            r"TASK \[r1_stack : Get the certificate from the ACME CA[^\n]*\]\s*\*+\s*changed:",
            result.stdout,
        )
        assert "HTTPS with a certificate from the ACME CA" in result.stdout
        served = served_certificate()
        assert "Pebble" in served.issuer.rfc4514_string(), served.issuer
        # The certificate is good until near its end: a second run asks for none.
        again = make("demo", acme)
        assert_ok(again)
        assert recap(again.stdout)["changed"] == 0, again.stdout[-6000:]
        assert served_certificate() == served
    # Back to the stack's own CA: the same CA as before (never rotated by a run).
    assert_ok(make("demo"))
    assert served_certificate().issuer == own_ca_issuer


def test_a_service_that_crashes_is_started_again_without_systemd():
    # This host has no systemd as PID 1: the services run under `r1ctl supervise` (started
    # by start-stop-daemon), which restarts a failed server as the units' Restart=on-failure.
    assert "\nSUPERVISOR=start-stop-daemon\n" in (STACK / "native" / "r1ctl.conf").read_text()
    crashed = pids()["tools-gateway"]
    os.kill(int(crashed), signal.SIGKILL)
    waited = subprocess.run([R1CTL, "wait", "tools-gateway", "60"], capture_output=True, text=True)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert pids()["tools-gateway"] not in (None, crashed)
    assert uid_of(pids()["tools-gateway"]) == pwd.getpwnam(USERS["tools-gateway"]).pw_uid
    assert requests.get("http://127.0.0.1:8090/health", timeout=10).status_code == 200
    log = (STACK / "native" / "logs" / "tools-gateway.log").read_text()
    assert "r1ctl: tools-gateway failed (status 137); restart 1 of 5" in log


def test_down_stops_everything_and_demo_brings_back_the_same_data(browser):
    chat_id = FIRST_CHAT["id"]  # the chat the person started above

    assert_ok(make("down"))
    assert pids() == dict.fromkeys(SERVICES)
    status = subprocess.run([R1CTL, "status"], capture_output=True, text=True)
    assert status.returncode == 3 and status.stdout.count(": stopped") == len(SERVICES), (
        status.stdout
    )
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{WEBUI}/health", timeout=5)
    # Open WebUI's data as a deployment from before the services' own users left it: the
    # deploy gives it back to Open WebUI's user.
    subprocess.run(["chown", "-R", "root:root", STACK / "data" / "open-webui"], check=True)

    assert_ok(make("demo"))
    assert (STACK / "data/open-webui/webui.db").stat().st_uid == pwd.getpwnam(
        USERS["open-webui"]
    ).pw_uid
    # The person reloads the chat's page: the question and the answer are there.
    person = admin_person(browser)
    try:
        person.page.goto(f"{FRONT_DOOR}/c/{chat_id}")
        question = person.page.locator("#messages-container .chat-user")
        expect(question.get_by_text("Find the maximum and minimum")).to_be_visible(timeout=60_000)
        expect(person.last_answer().locator(".katex").first).to_be_visible()
        person.shot("chat-after-down-and-demo")
    finally:
        person.close()


def test_inventory_change_reaches_the_running_open_webui(tmp_path):
    assert tool_server_urls(admin_token()) == ["http://127.0.0.1:8090"]
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "local", inventory)
    (inventory / "group_vars" / "all.yml").write_text(
        (inventory / "group_vars" / "all.yml").read_text() + "\nr1_stack_gateway_port: 18490\n"
    )
    result = make("demo", f"INVENTORY={inventory}")
    assert_ok(result)
    # Open WebUI's env only seeds its first start: the running one learnt the new port
    # through the reconcile step.
    assert re.search(r"TASK \[Reconcile Open WebUI[^\n]*\]\s*\*+\s*changed:", result.stdout), (
        result.stdout[-6000:]
    )
    assert tool_server_urls(admin_token()) == ["http://127.0.0.1:18490"]
    assert requests.get("http://127.0.0.1:18490/health", timeout=10).status_code == 200

    assert_ok(make("demo"))
    assert tool_server_urls(admin_token()) == ["http://127.0.0.1:8090"]


def test_broken_upgrade_rolls_back_and_the_smoke_passes_again(tmp_path):
    pins_before = json.loads((STACK / "native" / "pins.json").read_text())
    venvs_before = set(os.listdir(STACK / "venvs"))
    token = admin_token()
    chats_before = requests.get(
        f"{WEBUI}/api/v1/chats/", timeout=30, headers={"Authorization": f"Bearer {token}"}
    ).json()
    pins = tmp_path / "broken-pins.yml"
    pins.write_text(json.dumps(BROKEN_PINS))

    result = make("upgrade", "DEMO=1", f"PINS={pins}")

    assert result.returncode != 0, "the broken upgrade did not fail"
    assert "Upgrade rolled back" in result.stdout, result.stdout[-6000:]
    assert json.loads((STACK / "native" / "pins.json").read_text()) == pins_before
    smoke = subprocess.run(
        [STACK / "native" / "bin" / "r1deploy", "smoke", "--stack-dir", STACK],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-2000:]
    chats_after = requests.get(
        f"{WEBUI}/api/v1/chats/", timeout=30, headers={"Authorization": f"Bearer {admin_token()}"}
    ).json()
    assert [c["id"] for c in chats_after] == [c["id"] for c in chats_before]
    # The broken version's environment is left for inspection; remove it here (~3 GB).
    for name in set(os.listdir(STACK / "venvs")) - venvs_before:
        path = STACK / "venvs" / name
        if path.is_dir():
            shutil.rmtree(path)
        else:  # a lock file left beside an environment
            path.unlink()


# --- The model fetched by the deploy from a hub (a local stand-in: no hub here) ------------
# The stand-in serves the demo's own test model under the test model's id (whose facts size
# the context), so that the stack it deploys answers the smoke as the demo does.
HUB_REPO = "r1deploy/test-model"
FETCHED = STACK / "models" / "hf" / HUB_REPO


def hub_deploy(endpoint: str) -> subprocess.CompletedProcess:
    """`make deploy` of the demo's inventory with the model from the hub at endpoint."""
    return make(
        "deploy",
        "ARGS=-e @playbooks/vars/demo.yml -e r1deploy_model_source=hub "
        f"-e r1_stack_model_id={HUB_REPO} -e r1_stack_hf_endpoint={endpoint}",
    )


def running_state() -> tuple[dict, bytes]:
    return pids(), (STACK / "settings.json").read_bytes()


def test_a_deploy_that_cannot_reach_the_hub_stops_in_seconds_and_leaves_the_demo_running():
    """The new user's story: `make deploy` on a host without hub access after a working demo
    must stop at the fetch, before the render, with the cause and the fix."""
    before = running_state()
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    result = hub_deploy(f"http://127.0.0.1:{port}")

    assert result.returncode != 0
    out = result.stdout
    assert "could not be fetched onto localhost: cannot connect to" in out, out[-4000:]
    assert "Fix: check this host's route" in out and "r1_stack_hf_endpoint" in out
    assert "TASK [r1_stack : " not in out.split("Fetch the model where vLLM serves it")[1]
    assert running_state() == before  # nothing rendered, nothing restarted
    print(f"the run stopped after {result.seconds:.0f} s (preflight included)")
    assert result.seconds < 120


def test_a_deploy_from_the_hub_catches_a_corrupt_file_survives_a_cut_one_and_serves_them():
    """(A resume with a Range request needs a file bigger than huggingface_hub's 10 MiB
    chunk; the test model's weights are smaller, so a cut one is fetched again whole here:
    tests/unit/test_model_fetch.py proves the resume.)"""
    from tests.stubs.hub_standin import Faults, HubStandin, directory_files

    shutil.rmtree(STACK / "models" / "hf", ignore_errors=True)  # a fetch from nothing
    files = directory_files(STACK / "models" / "test")
    weights = "model.safetensors"
    before = running_state()
    with HubStandin(files, Faults(corrupt={weights}), repo=HUB_REPO) as hub:
        result = hub_deploy(hub.endpoint)
        assert result.returncode != 0
        assert f"BAD {weights}" in result.stdout or "did not match the hub" in result.stdout, (
            result.stdout[-4000:]
        )
        assert not (FETCHED / weights).exists()  # removed, not served
        assert running_state() == before

        # The next run: the connection breaks half-way through the weights; the fetch
        # gets them again and the deploy goes on to serve what it fetched.
        hub.faults = Faults(cut_after={weights: len(files[weights]) // 2})
        gets_before = len(hub.gets(weights))
        result = hub_deploy(hub.endpoint)
        assert_ok(result)
        assert len(hub.gets(weights)) - gets_before >= 2  # the cut one, and the whole one
        assert not hub.faults.cut_after  # the cut did happen
    out = result.stdout
    assert "downloaded, every file matches the hub's checksum" in out, out[-6000:]
    # The fetch's progress reached the deploy output as it ran (r1deploy_follow).
    assert re.search(r"^  localhost: +(got|ok|downloading) ", out, re.MULTILINE), out[-6000:]
    assert (FETCHED / ".cache" / "r1deploy-fetched.json").exists()
    vllm_cmdline = Path(f"/proc/{pids()['vllm']}/cmdline").read_bytes().split(b"\0")
    assert str(FETCHED).encode() in vllm_cmdline
    # The smoke ran through the stack serving the fetched files (site.yml's verify play).
    assert "TASK [Run the smoke suite" in out and recap(out)["failed"] == 0

    # A re-run reads nothing from the hub (it is gone now) and changes nothing.
    running = pids()
    result = hub_deploy("http://127.0.0.1:9")
    assert_ok(result)
    assert "not fetched again" in result.stdout
    assert recap(result.stdout)["changed"] == 0, result.stdout[-6000:]
    assert pids() == running


# --- Two vLLM replicas behind vLLM's router (docs/scale-out.md) ---------------------------
# round_robin, so that the spread is exact (cache_aware, the default, keeps new conversations
# on one replica at this load: measured in make bench).
REPLICA_PORTS = {"vllm": 8100, "vllm-2": 8101}
ROUTER = "http://127.0.0.1:8000"
REPLICAS_ARGS = "ARGS=-e r1_stack_vllm_replicas=2 -e r1_stack_router_policy=round_robin"


def vllm_key() -> str:
    return (SECRETS / "vllm_api_key").read_text().strip()


def replica_url(service: str) -> str:
    return f"http://127.0.0.1:{REPLICA_PORTS[service]}"


def served_by_replica() -> dict:
    return {s: rf.successes(replica_url(s)) for s in REPLICA_PORTS}


def test_two_replicas_behind_the_router_serve_a_person_and_the_api_from_both(browser):
    result = make("demo", REPLICAS_ARGS)
    assert_ok(result)
    # site.yml's smoke ran through the router (settings.json vllm.url is its port).
    assert "TASK [Run the smoke suite" in result.stdout and recap(result.stdout)["failed"] == 0
    status = subprocess.run([R1CTL, "status"], capture_output=True, text=True)
    for service in ("vllm", "vllm-2", "vllm-router"):
        assert re.search(rf"^{service}: running \(pid \d+", status.stdout, re.M), status.stdout
    assert rf.router_workers(ROUTER) == {replica_url(s): True for s in REPLICA_PORTS}
    # Each replica's own smoke (on its own URL) runs in the rolling restart below.
    # A bounded bench through the router reaches both replicas (each one's own count).
    before = served_by_replica()
    with ThreadPoolExecutor(4) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    requests.post(
                        f"{ROUTER}/v1/chat/completions",
                        headers=rf.auth(vllm_key()),
                        timeout=60,
                        json=rf.chat_body("r1deploy-test-model", rf.unique_prompt(), max_tokens=16),
                    ).status_code
                ),
                range(16),
            )
        )
    spread = {s: served_by_replica()[s] - before[s] for s in REPLICA_PORTS}
    print(f"16 requests through the router (round_robin): per replica {spread}")
    assert codes == [200] * 16
    assert spread == {"vllm": 8, "vllm-2": 8}

    # A person's question in Open WebUI, behind the front door, answered through the router.
    before = served_by_replica()
    person = admin_person(browser)
    try:
        message = person.ask(script.MATHS_PROMPT)
        assert message["content"] == script.MATHS.answer_text
    finally:
        person.close()
    assert sum(served_by_replica().values()) > sum(before.values())


def test_a_rolling_restart_under_load_fails_no_request():
    before = pids_of("vllm", "vllm-2", "vllm-router")
    results: list = []
    stop = threading.Event()
    threads = rf.load(ROUTER, "r1deploy-test-model", vllm_key(), stop, results)
    time.sleep(3)
    try:
        result = make("rolling-restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert_ok(result)
    after = pids_of("vllm", "vllm-2", "vllm-router")
    failed = [r for r in results if not r[2]]
    print(
        f"rolling restart: {result.seconds:.0f} s, {len(results)} requests through the "
        f"router, {len(failed)} failed {[r[3] for r in failed][:5]}"
    )
    for line in result.stdout.splitlines():
        if "drained in" in line or "healthy " in line:
            print(line.strip())
    assert after["vllm"] != before["vllm"] and after["vllm-2"] != before["vllm-2"]
    assert after["vllm-router"] == before["vllm-router"]
    # Each replica passed the model server's smoke on its own URL before it went back.
    assert result.stdout.count("smoke on its own URL") == 2, result.stdout[-6000:]
    assert len(results) > 20
    assert failed == []
    assert rf.router_workers(ROUTER) == {replica_url(s): True for s in REPLICA_PORTS}


# The router's defaults in the stack (r1deploy.router.RouterSettings): a replica is dropped
# after failed health checks (interval x threshold, each up to the check timeout), plus one
# interval of phase, plus slack.
ROUTER_SETTINGS = RouterSettings()
DETECTION_WINDOW_S = (
    ROUTER_SETTINGS.health_check_interval_s * (ROUTER_SETTINGS.health_failure_threshold + 1)
    + ROUTER_SETTINGS.health_check_timeout_s * ROUTER_SETTINGS.health_failure_threshold
    + 5
)


def test_a_stopped_replica_is_dropped_within_the_detection_window_then_rejoins():
    """vllm-2's service stopped under load (r1ctl stop: SIGTERM, vLLM shuts down, which
    takes a while): requests in flight on it may fail; from the moment it is gone the router
    drops it within its detection window, and every request that starts after that window
    succeeds, on vllm; started again, vllm-2 rejoins and serves."""
    victim = replica_url("vllm-2")
    results: list = []
    stop, dropped = threading.Event(), []

    def watch_router():
        while not stop.is_set() and not dropped:
            if not rf.router_workers(ROUTER).get(victim, True):
                dropped.append(time.monotonic())
            time.sleep(0.5)

    threads = rf.load(ROUTER, "r1deploy-test-model", vllm_key(), stop, results)
    try:
        time.sleep(3)
        stopping_at = time.monotonic()
        watcher = threading.Thread(target=watch_router, daemon=True)
        watcher.start()
        subprocess.run([R1CTL, "stop", "vllm-2"], check=True, capture_output=True, timeout=120)
        gone_at = time.monotonic()
        watcher.join(timeout=DETECTION_WINDOW_S + 30)
        time.sleep(max(0.0, gone_at + DETECTION_WINDOW_S + 5 - time.monotonic()))
        started_at = time.monotonic()
        subprocess.run([R1CTL, "start", "vllm-2"], check=True, capture_output=True, timeout=120)
        deadline = started_at + 600
        while not rf.router_workers(ROUTER).get(victim) and time.monotonic() < deadline:
            time.sleep(1)
        rejoined_after = time.monotonic() - started_at
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    failed = [r for r in results if not r[2]]
    after_window = [r for r in results if r[0] > gone_at + DETECTION_WINDOW_S]
    dropped_after = dropped[0] - gone_at if dropped else None
    print(
        f"vllm-2 stopped under load: its stop took {gone_at - stopping_at:.1f} s; "
        f"{len(failed)} of {len(results)} requests failed {[r[3] for r in failed][:5]}, "
        f"the last ending {max((r[1] - gone_at for r in failed), default=0):.1f} s after it "
        f"was gone; the router dropped it {dropped_after} s after it was gone (window "
        f"{DETECTION_WINDOW_S} s); back in rotation {rejoined_after:.0f} s after its start"
    )
    assert dropped_after is not None and dropped_after <= DETECTION_WINDOW_S
    assert all(r[1] - gone_at <= DETECTION_WINDOW_S for r in failed)
    assert after_window and all(r[2] for r in after_window)
    assert rf.router_workers(ROUTER).get(victim), "the restarted replica never rejoined"
    before = served_by_replica()
    for _ in range(4):
        requests.post(
            f"{ROUTER}/v1/chat/completions",
            headers=rf.auth(vllm_key()),
            timeout=60,
            json=rf.chat_body("r1deploy-test-model", rf.unique_prompt(), max_tokens=16),
        )
    assert served_by_replica()["vllm-2"] > before["vllm-2"]  # it serves again


def test_back_to_one_replica_stops_the_router_and_the_second_replica():
    result = make("demo")
    assert_ok(result)
    assert "TASK [Run the smoke suite" in result.stdout and recap(result.stdout)["failed"] == 0
    status = subprocess.run([R1CTL, "status"], capture_output=True, text=True)
    assert "vllm-2" not in status.stdout and "vllm-router" not in status.stdout, status.stdout
    assert pids_of("vllm")["vllm"] is not None
    # The one vLLM has the clients' port back: its own /metrics there, no router's /workers.
    assert requests.get(f"{ROUTER}/workers", timeout=10).status_code == 404
    assert "vllm:request_success_total" in requests.get(f"{ROUTER}/metrics", timeout=10).text
    for port in REPLICA_PORTS.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still on {port}"
