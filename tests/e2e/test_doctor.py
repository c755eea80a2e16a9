"""The doctor on the real stack (docs/doctor.md): it passes on the healthy stack; each fault
that can be made here makes its check fail (or warn) with the cause and the fix, and the fix,
applied, makes it pass again. The GPU checks are unit-tested on recorded outputs
(tests/unit/test_doctor_nvidia.py); they SKIP here, where there is no GPU."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from r1deploy.webui.client import WebUIClient
from tests.e2e import stack as stacklib
from tests.e2e.conftest import CLOSED_PORT, GATEWAY_PORT, reconcile
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
REPO = stacklib.REPO
MODEL_TEMPLATE = REPO / "r1deploy" / "testmodel" / "r1_distill_chat_template.jinja"


class Doctor:
    """One `r1deploy doctor --format json` run: its exit code and each check's result."""

    def __init__(self, stack: Path, *args: str):
        done = subprocess.run(
            [sys.executable, "-m", "r1deploy.cli", "doctor", "--stack-dir", str(stack)]
            + ["--format", "json", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert done.returncode in (0, 1), done.stderr + done.stdout
        self.exit_code = done.returncode
        self.checks = {c["id"]: c for c in json.loads(done.stdout)["checks"]}
        self.table = "\n".join(
            f"{c['status'].upper():4} {i}: {c['seen']}" for i, c in self.checks.items()
        )

    def __getitem__(self, check_id: str) -> dict:
        return self.checks[check_id]


def copy_of(stack: Path, tmp_path: Path) -> Path:
    """The stack's files, to change one without touching the running stack's."""
    copy = tmp_path / "stack"
    shutil.copytree(
        stack, copy, symlinks=True, ignore=shutil.ignore_patterns("data", "logs", "run")
    )
    return copy


def admin(stack: Path) -> WebUIClient:
    env = stacklib.read_env(stack)
    client = WebUIClient(stacklib.read_settings(stack)["webui"]["url"])
    client.sign_in(env["WEBUI_ADMIN_EMAIL"], env["WEBUI_ADMIN_PASSWORD"])
    return client


def as_another_admin(stack: Path, email: str, tmp_path: Path) -> Path:
    """A copy of the stack whose .env names another admin of the same Open WebUI.

    Open WebUI allows 15 sign-ins per account in 3 minutes, and each doctor run signs in
    once: on their own accounts these tests leave the stack admin's sign-ins to the other
    tests of the tier (the smoke, reconcile), and a password changed here is not its."""
    password = "Doctor-" + secrets.token_urlsafe(18)
    admin(stack).post(
        "/api/v1/auths/add",
        {"name": email.split("@")[0], "email": email, "password": password, "role": "admin"},
    )
    copy = copy_of(stack, tmp_path)
    dotenv = copy / ".env"
    lines = [
        f"WEBUI_ADMIN_EMAIL='{email}'"
        if line.startswith("WEBUI_ADMIN_EMAIL=")
        else f"WEBUI_ADMIN_PASSWORD='{password}'"
        if line.startswith("WEBUI_ADMIN_PASSWORD=")
        else line
        for line in dotenv.read_text().splitlines()
    ]
    dotenv.write_text("\n".join(lines) + "\n")
    return copy


@pytest.fixture(scope="module")
def webui_stack(stack, tmp_path_factory) -> Path:
    """The stack as the doctor's webui tests see it: signed in as their own admin."""
    return as_another_admin(stack, "doctor-tests@r1deploy.local", tmp_path_factory.mktemp("w"))


def _wait_for_a_scrape(stack: Path, timeout_s: float = 30) -> None:
    """Until Prometheus (just started by the monitoring fixture) has scraped each target."""
    wait_until(
        lambda: Doctor(stack, "--only", "monitoring.targets")["monitoring.targets"],
        timeout_s,
        "monitoring.targets passes",
        interval_s=2,
        until=lambda check: check["status"] == "pass",
    )


def test_the_doctor_passes_on_the_healthy_stack(stack, monitoring):
    _wait_for_a_scrape(stack)
    run = Doctor(stack)
    statuses = {i: c["status"] for i, c in run.checks.items()}
    # The shipped tools call public APIs, which this machine cannot resolve: that check
    # warns, rightly (it passes once they answer: test_an_unreachable_tool_upstream...).
    upstreams = run["gateway.upstreams"]
    if upstreams["status"] == "warn":
        assert "DNS does not resolve" in upstreams["seen"], run.table
        del statuses["gateway.upstreams"]
    assert not [i for i, s in statuses.items() if s in ("fail", "warn")], run.table
    # The checks that this machine can answer did answer: only the GPU ones and the
    # controller's secrets (no --secrets-dir) have nothing to read here.
    skipped = sorted(i for i, s in statuses.items() if s == "skip")
    assert all(i.startswith("gpu.") or i == "secrets.controller_match" for i in skipped), skipped


def test_a_changed_tool_flag_or_template_fails_tool_flags_until_rendered_again(stack, tmp_path):
    copy = copy_of(stack, tmp_path)
    settings = stacklib.read_settings(copy)
    good = list(settings["vllm"]["args"])
    settings["vllm"]["args"] = [a for a in good if a != "--enable-auto-tool-choice"]
    (copy / "settings.json").write_text(json.dumps(settings))
    check = Doctor(copy, "--only", "vllm.tool_flags")["vllm.tool_flags"]
    assert check["status"] == "fail", check
    assert "--enable-auto-tool-choice is not given" in check["seen"]
    assert "tool calls never trigger" in check["cause"] and "make deploy" in check["fix"]

    settings["vllm"]["args"] = good
    (copy / "settings.json").write_text(json.dumps(settings))
    template = copy / "chat_template.jinja"
    shipped = template.read_text()
    template.write_text(MODEL_TEMPLATE.read_text())  # the model's own: tools dropped
    check = Doctor(copy, "--only", "vllm.tool_flags")["vllm.tool_flags"]
    assert check["status"] == "fail", check
    assert "drops a request's tools" in check["seen"]

    template.write_text(shipped)  # what make deploy renders
    assert Doctor(copy, "--only", "vllm.tool_flags")["vllm.tool_flags"]["status"] == "pass"


def test_an_open_webui_env_change_its_database_ignores_is_named_until_reconcile(webui_stack):
    """Open WebUI reads ENABLE_SIGNUP on its first start only; later its database rules, so
    a changed environment file does nothing until reconcile applies it."""
    env_file = webui_stack / "native" / "env" / "open-webui.env"
    original = env_file.read_text()
    assert "ENABLE_SIGNUP=false" in original.replace("'", "").replace('"', "")
    try:
        env_file.write_text(
            "\n".join(
                "ENABLE_SIGNUP=true" if line.startswith("ENABLE_SIGNUP=") else line
                for line in original.splitlines()
            )
            + "\n"
        )
        check = Doctor(webui_stack, "--only", "webui.env_drift")["webui.env_drift"]
        assert check["status"] == "warn", check
        assert "ENABLE_SIGNUP" in check["seen"] and "first-start" in check["cause"]
        assert "r1deploy webui reconcile" in check["fix"]
        reconcile(webui_stack)
        check = Doctor(webui_stack, "--only", "webui.env_drift")["webui.env_drift"]
        assert check["status"] == "pass", check
    finally:
        env_file.write_text(original)
        reconcile(webui_stack)


def test_signup_opened_in_admin_settings_fails_until_reconcile_closes_it(webui_stack):
    client = admin(webui_stack)
    client.set_admin_config(client.admin_config() | {"ENABLE_SIGNUP": True})  # as the UI does
    run = Doctor(webui_stack, "--only", "webui.signup")
    assert run["webui.signup"]["status"] == "fail", run.table
    assert "anyone who reaches Open WebUI" in run["webui.signup"]["cause"]
    assert "r1deploy webui reconcile" in run["webui.signup"]["fix"]
    reconcile(webui_stack)
    assert Doctor(webui_stack, "--only", "webui.signup")["webui.signup"]["status"] == "pass"


def test_legacy_function_calling_set_in_the_ui_fails_until_switched_back(webui_stack):
    client = admin(webui_stack)
    model_id = stacklib.read_settings(webui_stack)["model"]["served_name"]
    entry = client.model_entry(model_id)
    form = {k: entry[k] for k in ("id", "base_model_id", "name", "meta", "params", "is_active")}

    def function_calling(mode: str | None) -> None:
        params = {k: v for k, v in form["params"].items() if k != "function_calling"}
        if mode:
            params["function_calling"] = mode
        client.update_model(form | {"params": params})

    def check() -> dict:
        return Doctor(webui_stack, "--only", "webui.function_calling")["webui.function_calling"]

    try:
        function_calling("legacy")  # Advanced Params > Function Calling in the UI
        found = check()
        assert found["status"] == "fail", found
        assert "sends no tools to vLLM" in found["cause"] and "Native" in found["fix"]
        function_calling("native")
        assert check()["status"] == "pass"
    finally:
        function_calling(form["params"].get("function_calling"))


def test_an_admin_password_changed_in_the_ui_is_named_until_env_has_it(stack, tmp_path):
    mine = as_another_admin(stack, "doctor-password@r1deploy.local", tmp_path / "mine")
    env = stacklib.read_env(mine)
    original, changed = env["WEBUI_ADMIN_PASSWORD"], "Changed-in-the-UI-" + "x" * 12
    admin(mine).change_password(original, changed)  # the account settings page's call
    check = Doctor(mine, "--only", "webui.builtin_tools")["webui.builtin_tools"]
    assert check["status"] == "fail", check
    assert "does not sign in" in check["seen"] and "changed in the UI" in check["cause"]
    assert "WEBUI_ADMIN_PASSWORD" in check["fix"]
    # The fix's first step: the password that works, in .env.
    dotenv = mine / ".env"
    dotenv.write_text(dotenv.read_text().replace(original, changed))
    check = Doctor(mine, "--only", "webui.builtin_tools")["webui.builtin_tools"]
    assert check["status"] == "pass", check


def test_an_unreachable_tool_upstream_is_named_until_it_answers(stack, stack_upstream, tmp_path):
    """The weather tool alone, at the local stand-in of its API (its base_url_env in .env);
    then that variable names a port where nothing listens."""
    copy = copy_of(stack, tmp_path)
    tools = [p for p in json.loads((copy / "tools.json").read_text()) if p["name"] == "get_weather"]
    (copy / "tools.json").write_text(json.dumps(tools))
    dotenv = copy / ".env"
    env = dotenv.read_text()
    variable = tools[0]["base_url_env"]

    def upstreams_with(url: str) -> dict:
        dotenv.write_text(env + f"{variable}={url}\n")
        return Doctor(copy, "--only", "gateway.upstreams")["gateway.upstreams"]

    check = upstreams_with(f"http://127.0.0.1:{CLOSED_PORT}/weather")
    assert check["status"] == "warn", check
    assert f"get_weather (127.0.0.1:{CLOSED_PORT} from {variable}" in check["seen"]
    assert "tools.json" in check["fix"] and "base_url_env" in check["fix"]
    assert upstreams_with(f"{stack_upstream.url}/weather")["status"] == "pass"


def test_secrets_that_differ_from_the_controllers_are_named(stack, tmp_path):
    kept = tmp_path / "secrets"
    kept.mkdir()
    (kept / "vllm_api_key").write_text("not-the-hosts-" + "k" * 26 + "\n")
    check = Doctor(stack, "--only", "secrets.", "--secrets-dir", str(kept))[
        "secrets.controller_match"
    ]
    assert check["status"] == "fail", check
    assert "vllm_api_key" in check["seen"] and "VLLM_API_KEY" in check["seen"]
    assert "not-the-hosts" not in json.dumps(check)  # never a value
    assert "rm" in check["fix"] and "make rotate-secrets" in check["fix"]
    # The fix's first way: remove it, and the next deploy adopts the host's value into it.
    (kept / "vllm_api_key").write_text(stacklib.read_env(stack)["VLLM_API_KEY"] + "\n")
    check = Doctor(stack, "--only", "secrets.", "--secrets-dir", str(kept))[
        "secrets.controller_match"
    ]
    assert check["status"] == "pass", check


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs: needs root (CI is root)")
def test_a_full_file_system_fails_disk_free_until_space_is_freed(stack, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        copy = copy_of(stack, small)
        filler = small / "filler"
        free = shutil.disk_usage(small).free
        subprocess.run(
            ["fallocate", "-l", str(free - 4 * 1024**2), str(filler)], check=True
        )  # 4 MiB left
        args = ("--only", "disk.free", "--min-free-gib", "0.04")  # 41 MiB
        check = Doctor(copy, *args)["disk.free"]
        assert check["status"] == "fail", check
        assert str(copy) in check["seen"] and "No space left on device" in check["cause"]
        assert "free space there" in check["fix"]
        filler.unlink()
        assert Doctor(copy, *args)["disk.free"]["status"] == "pass"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def _short_lived_certificate(tls: Path, days: float) -> tuple[bytes, bytes]:
    """A server certificate from the stack's CA that ends in ``days``: (cert, key) PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((tls / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _restart(server) -> None:
    server.stop()
    server.start()
    server.wait_healthy(60)


def test_a_certificate_about_to_end_fails_until_renewed_and_served(stack, front_door):
    tls = stack / "front-door" / "tls"
    kept = {name: (tls / name).read_bytes() for name in ("server.crt", "server.key")}
    cert, key = _short_lived_certificate(tls, days=2)
    try:
        (tls / "server.crt").write_bytes(cert)
        (tls / "server.key").write_bytes(key)
        _restart(front_door)
        check = Doctor(stack, "--only", "frontdoor.")["frontdoor.certificate"]
        assert check["status"] == "fail", check
        assert "serves" in check["seen"] and check["data"]["days_left"] < 3
        # Renewed on disk (what make deploy does within 30 days of the end), still the old
        # one served: the fix says to restart.
        for name, content in kept.items():
            (tls / name).write_bytes(content)
        check = Doctor(stack, "--only", "frontdoor.")["frontdoor.certificate"]
        assert check["status"] == "fail" and "already renewed" in check["fix"], check
        _restart(front_door)
        assert Doctor(stack, "--only", "frontdoor.")["frontdoor.certificate"]["status"] == "pass"
    finally:
        for name, content in kept.items():
            (tls / name).write_bytes(content)


def _with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    at = argv.index(flag)
    return argv[: at + 1] + [value] + argv[at + 2 :]


def test_a_model_path_that_does_not_exist_is_named_from_the_servers_log(
    stack, stack_services, tmp_path
):
    """A real vLLM started on a model directory that is not there (the stack's own keeps
    running): it exits, and the doctor names the cause from its log. The fix, the stack's
    model directory, is the running server's: pointed back at it, the check passes."""
    copy = copy_of(stack, tmp_path)
    settings = stacklib.read_settings(copy)
    good_url = settings["vllm"]["url"]
    service = stack_services["vllm"]
    missing = tmp_path / "models" / "DeepSeek-R1-Distill-Qwen-1.5B"
    argv = _with_flag(
        _with_flag(service["argv"], "--model", str(missing)), "--port", str(CLOSED_PORT)
    )
    (copy / "native" / "logs").mkdir(parents=True, exist_ok=True)
    with (copy / "native" / "logs" / "vllm.log").open("w") as log:
        done = subprocess.run(
            argv,
            env={**os.environ, **service["env"]},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
            cwd=tmp_path,
        )
    assert done.returncode != 0
    settings["vllm"]["url"] = f"http://127.0.0.1:{CLOSED_PORT}"
    settings["model"]["path"] = str(missing)
    (copy / "settings.json").write_text(json.dumps(settings))
    check = Doctor(copy, "--only", "services.")["services.reachable"]
    assert check["status"] == "fail", check
    assert "is not where the server looks for it" in check["cause"], check["cause"]
    assert "r1_stack_model_dir" in check["fix"]
    settings["vllm"]["url"] = good_url
    (copy / "settings.json").write_text(json.dumps(settings))
    check = Doctor(copy, "--only", "services.")["services.reachable"]
    assert "vllm 200" in check["seen"], check


@pytest.mark.stops_servers
def test_a_stopped_service_is_named_with_its_log_until_it_starts_again(stack, gateway_server):
    gateway_server.stop()
    try:
        check = Doctor(stack, "--only", "services.")["services.reachable"]
        assert check["status"] == "fail", check
        assert "tools-gateway DOWN" in check["seen"]
        assert "native/logs/tools-gateway.log" in check["cause"]
        assert "tools-gateway:" in check["fix"]
    finally:
        gateway_server.start()
        gateway_server.wait_healthy(60)
    assert Doctor(stack, "--only", "services.")["services.reachable"]["status"] == "pass"


@pytest.mark.stops_servers
def test_a_port_another_process_holds_is_named_as_the_cause(stack, gateway_server):
    gateway_server.stop()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", GATEWAY_PORT))
    holder.listen()  # takes connections, never answers: what another program does
    try:
        gateway_server.start()
        wait_until(
            gateway_server.process.poll,
            60,
            "the gateway exits on the held port (None: it started anyway)",
            interval_s=0.5,
            until=lambda returncode: returncode is not None,
        )
        check = Doctor(stack, "--only", "services.", "--timeout", "2")["services.reachable"]
        assert check["status"] == "fail", check
        assert "tools-gateway" in check["cause"] and "port" in check["cause"], check
        assert "r1_stack_gateway_port" in check["fix"], check
    finally:
        holder.close()
        gateway_server.stop()
        gateway_server.start()
        gateway_server.wait_healthy(60)
    assert Doctor(stack, "--only", "services.")["services.reachable"]["status"] == "pass"
