"""The deploy tier: secrets stay put across controllers, and change only on purpose.

A second checkout of the repository (a teammate's, a CI runner, a rebuilt laptop) has no
secrets/<host>/. Against the host where this checkout's `make demo` runs, it adopts the
host's secrets and changes nothing there; one whose secret differs stops before any change.
Then the secrets are rotated with `make rotate-secrets` (all four in one run), ending in a
green smoke. Runs after test_native_demo.py, on the same host (/opt/r1deploy).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.deploy.runs import ROOT, assert_ok, make
from tests.deploy.test_native_demo import SECRETS, STACK, WEBUI, pids

pytestmark = pytest.mark.deploy
NAMES = {
    "vllm_api_key": "VLLM_API_KEY",
    "webui_secret_key": "WEBUI_SECRET_KEY",
    "webui_admin_password": "WEBUI_ADMIN_PASSWORD",
    "tools_gateway_key": "TOOLS_GATEWAY_KEY",
}


def host_env() -> dict:
    from r1deploy.stackdir import read_env_file

    return read_env_file(STACK / ".env")


@pytest.fixture(scope="module")
def second_checkout(tmp_path_factory) -> Path:
    """A clone of this checkout's commit: the same code, no secrets/."""
    clone = tmp_path_factory.mktemp("teammate") / "r1deploy"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    assert not (clone / "secrets").exists()
    return clone


@pytest.fixture(scope="module", autouse=True)
def stack_up_and_down_at_the_end():
    assert_ok(make("demo"))
    yield
    make("down")


def test_a_second_checkout_adopts_the_hosts_secrets_and_changes_nothing_there(second_checkout):
    env_before, running = (STACK / ".env").read_bytes(), pids()
    result = make("demo", checkout=second_checkout)
    assert_ok(result)
    assert (
        "localhost: adopted api_key_ops, monitoring_password, tools_gateway_key, vllm_api_key, "
        "webui_admin_password, webui_secret_key from /opt/r1deploy/.env"
    ) in result.stdout, result.stdout[-6000:]
    assert (STACK / ".env").read_bytes() == env_before
    assert pids() == running  # nothing restarted
    adopted = second_checkout / "secrets" / "localhost"
    for name in NAMES:
        assert (adopted / name).read_text().strip() == (SECRETS / name).read_text().strip()
        assert (adopted / name).stat().st_mode & 0o777 == 0o600
    # The front door's CA too: the same certificate people were told to trust.
    for name in ("ca.crt", "ca.key"):
        assert (adopted / "tls" / name).read_bytes() == (SECRETS / "tls" / name).read_bytes()
    assert "0 failed" in result.stdout  # its smoke passed


def test_a_checkout_whose_secret_differs_stops_before_any_change(second_checkout):
    kept = second_checkout / "secrets" / "localhost" / "vllm_api_key"
    kept.write_text("a-key-nobody-runs-with-0123456789abcdef\n")
    env_before, running = (STACK / ".env").read_bytes(), pids()
    result = make("demo", checkout=second_checkout)
    assert result.returncode != 0
    assert "differ between this controller" in result.stdout
    assert "vllm_api_key (VLLM_API_KEY)" in result.stdout
    assert "make rotate-secrets SECRET=vllm_api_key" in result.stdout
    assert "a-key-nobody-runs-with" not in result.stdout + result.stderr  # no value shown
    assert host_env()["VLLM_API_KEY"] not in result.stdout + result.stderr
    assert (STACK / ".env").read_bytes() == env_before
    assert pids() == running
    kept.unlink()  # adopt the host's again: the way out the message gives
    assert_ok(make("demo", checkout=second_checkout))
    assert kept.read_text().strip() == host_env()["VLLM_API_KEY"]


def _signin(password: str) -> int:
    return requests.post(
        f"{WEBUI}/api/v1/auths/signin",
        timeout=30,
        json={"email": "admin@r1deploy.local", "password": password},
    ).status_code


def test_rotating_secrets_changes_each_everywhere_and_the_smoke_passes():
    """All four in one `make rotate-secrets` (the way out of a suspected leak, and one deploy
    instead of four in this tier): each changes on the controller and in .env, and each
    consumer follows: the old key is refused where the new one works."""
    before = host_env()
    result = make("rotate-secrets", "SECRET=" + ",".join(sorted(NAMES)), "DEMO=1")
    assert_ok(result)
    after = host_env()
    for secret, key in NAMES.items():
        assert after[key] != before[key], secret
        assert (SECRETS / secret).read_text().strip() == after[key], secret
        assert f"{secret} rotated" in result.stdout
    assert "0 failed" in result.stdout, result.stdout[-6000:]  # the deploy's smoke
    key = NAMES["vllm_api_key"]
    for old_or_new, status in ((before[key], 401), (after[key], 200)):
        answer = requests.get(
            "http://127.0.0.1:8000/v1/models",
            timeout=30,
            headers={"Authorization": f"Bearer {old_or_new}"},
        )
        assert answer.status_code == status
    key = NAMES["tools_gateway_key"]
    for old_or_new, refused in ((before[key], True), (after[key], False)):
        answer = requests.get(
            "http://127.0.0.1:8090/openapi.json",
            timeout=30,
            headers={"Authorization": f"Bearer {old_or_new}"},
        )
        assert (answer.status_code == 401) is refused
    key = NAMES["webui_admin_password"]
    assert _signin(before[key]) == 400 and _signin(after[key]) == 200
    assert "everyone" in result.stdout and "signed out" in result.stdout


def test_rotating_an_unknown_secret_stops_before_any_change():
    before = host_env()
    result = make("rotate-secrets", "SECRET=vllm_api_key,no_such_secret", "DEMO=1")
    assert result.returncode != 0
    assert "no_such_secret" in result.stdout and "Fix: make rotate-secrets" in result.stdout
    assert host_env() == before
