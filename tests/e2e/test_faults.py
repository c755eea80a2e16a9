"""Fault cases: each breaks one thing the classic way; the right check must fail with a
message that says what and how to fix it, and the other checks must still run."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from tests.e2e import stack as stacklib
from tests.e2e.conftest import (
    CLOSED_PORT,
    FAULT_WEBUI_PORTS,
    WEBUI_READY_S,
    fault_stack,
    reconcile,
    webui_server,
)
from tests.e2e.smokerun import run_smoke

VLLM_CHECKS = ["vllm.models", "vllm.chat", "vllm.stream", "vllm.tool_call"]


def _copy_stack(stack, tmp_path):
    copy = tmp_path / "stack"
    subprocess.run(["cp", "-a", str(stack), str(copy)], check=True)
    return copy


def test_wrong_api_key_fails_the_vllm_calls_and_nothing_else(stack, tmp_path):
    broken = _copy_stack(stack, tmp_path)
    env = (broken / ".env").read_text().splitlines()
    env = [
        ("VLLM_API_KEY=not-the-deployed-key" if line.startswith("VLLM_API_KEY=") else line)
        for line in env
    ]
    (broken / ".env").write_text("\n".join(env) + "\n")
    run = run_smoke(broken, "--inside")  # the services behind the front door
    assert run.exit_code == 1, run.table
    statuses = run.statuses()
    for name in VLLM_CHECKS:
        assert statuses[name] == "fail", run.table
        assert "HTTP 401" in run.check(name)["message"]
    assert "VLLM_API_KEY" in run.check("vllm.models")["message"]
    # The server still enforces its own key, and Open WebUI (its own key) still works.
    for name in [
        "vllm.health",
        "vllm.auth",
        "webui.signin",
        "webui.models",
        "webui.chat",
        "webui.signup_closed",
    ]:
        assert statuses[name] == "pass", run.table


def test_configured_model_name_that_vllm_does_not_serve_fails_the_model_checks(stack, tmp_path):
    broken = _copy_stack(stack, tmp_path)
    settings = stacklib.read_settings(broken)
    settings["model"]["served_name"] = "deepseek-r1"  # the name ops expect, not the served one
    (broken / "settings.json").write_text(json.dumps(settings))
    run = run_smoke(broken)
    assert run.exit_code == 1, run.table
    models = run.check("vllm.models")
    assert models["status"] == "fail"
    assert "not the configured model name 'deepseek-r1'" in models["message"]
    assert "--served-model-name" in models["message"]
    assert stacklib.read_settings(stack)["model"]["served_name"] in models["message"]
    assert run.status("webui.models") == "fail"
    assert "does not list the model 'deepseek-r1'" in run.check("webui.models")["message"]
    for name in ["vllm.health", "vllm.auth", "webui.health", "webui.signin", "webui.signup_closed"]:
        assert run.status(name) == "pass", run.table


@pytest.fixture(scope="module")
def misconfigured_webuis(stack, vllm_server, tmp_path_factory):
    """Two Open WebUIs started wrong, side by side: a wrong backend URL, and the backend
    given as OPENAI_BASE_URL (the guides' name, which Open WebUI does not read)."""
    settings = stacklib.read_settings(stack)
    servers = {
        "wrong_backend": webui_server(
            "open-webui-wrong-backend",
            stack,
            FAULT_WEBUI_PORTS["wrong_backend"],
            tmp_path_factory.mktemp("webui-wrong-backend"),
            OPENAI_API_BASE_URL=f"http://127.0.0.1:{CLOSED_PORT}/v1",
        ),
        "openai_base_url": webui_server(
            "open-webui-openai-base-url",
            stack,
            FAULT_WEBUI_PORTS["openai_base_url"],
            tmp_path_factory.mktemp("webui-openai-base-url"),
            OPENAI_API_BASE_URL=None,
            OPENAI_BASE_URL=f"{settings['vllm']['url']}/v1",
        ),
    }
    errors = []

    def start(server):
        try:
            server.start().wait_healthy(WEBUI_READY_S)
        except Exception as exc:  # reported below, after both tried
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        if errors:
            raise errors[0]
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def test_webui_pointed_at_a_wrong_backend_url_fails_the_wiring_check(
    stack, misconfigured_webuis, tmp_path
):
    broken = fault_stack(stack, tmp_path, FAULT_WEBUI_PORTS["wrong_backend"])
    run = run_smoke(broken, "--inside")  # the services behind the front door
    assert run.exit_code == 1, run.table
    models = run.check("webui.models")
    assert models["status"] == "fail"
    assert f"http://127.0.0.1:{CLOSED_PORT}/v1" in models["message"]
    assert "OPENAI_API_BASE_URL" in models["message"]
    assert run.status("webui.chat") == "fail"
    for name in [
        "vllm.health",
        "vllm.models",
        "vllm.chat",
        "vllm.tool_call",
        "webui.health",
        "webui.signin",
        "webui.signup_closed",
    ]:
        assert run.status(name) == "pass", run.table


def test_webui_given_openai_base_url_instead_of_openai_api_base_url_is_named(
    stack, misconfigured_webuis, tmp_path
):
    broken = fault_stack(stack, tmp_path, FAULT_WEBUI_PORTS["openai_base_url"])
    run = run_smoke(broken, "--inside")  # the services behind the front door
    assert run.exit_code == 1, run.table
    message = run.check("webui.models")["message"]
    assert run.status("webui.models") == "fail"
    assert "OPENAI_BASE_URL" in message and "not read by Open WebUI" in message
    for name in ["vllm.health", "vllm.chat", "webui.signin", "webui.signup_closed"]:
        assert run.status(name) == "pass", run.table


def test_builtin_tools_switched_on_fail_the_browser_path_chat_until_reconcile_puts_them_off(stack):
    """Open WebUI adds its built-in tools (~8,300 tokens) to every chat sent from the page
    unless the model's entry turns them off: a new release turning on such a default, or an
    admin ticking the box, breaks every chat a person sends while API chats still work."""
    from r1deploy.stackdir import StackDir
    from r1deploy.webui.client import WebUIClient
    from r1deploy.webui.reconcile import SESSION_FILE, sign_in_once

    loaded = StackDir.load(stack)
    client = WebUIClient(loaded.setting("webui", "url"))
    sign_in_once(
        client,
        stack / SESSION_FILE,
        loaded.env["WEBUI_ADMIN_EMAIL"],
        loaded.secret("WEBUI_ADMIN_PASSWORD"),
    )
    served = loaded.setting("model", "served_name")
    entry = client.model_entry(served)
    entry["meta"]["capabilities"]["builtin_tools"] = True
    client.update_model({k: entry[k] for k in ("id", "name", "meta", "params", "is_active")})

    run = run_smoke(stack, "--only", "webui.")
    assert run.exit_code == 1, run.table
    ui = run.check("webui.ui_chat")
    assert ui["status"] == "fail", run.table
    assert "maximum context length" in ui["message"], ui["message"]
    assert "built-in tools are on" in ui["message"] and "make deploy" in ui["message"]
    # The API path, all the smoke had before, does not see it.
    assert run.status("webui.chat") == "pass", run.table

    outcome = reconcile(stack)
    assert [i["item"] for i in outcome["items"] if i["changed"]] == ["model"]
    assert run_smoke(stack, "--only", "webui.").status("webui.ui_chat") == "pass"


@pytest.mark.stops_servers
def test_vllm_stopped_fails_its_health_and_the_webui_checks_still_run(stack, vllm_server):
    vllm_server.stop()
    run = run_smoke(stack)
    assert run.exit_code == 1, run.table
    health = run.check("vllm.health")
    assert health["status"] == "fail"
    assert "cannot connect" in health["message"] and "docker compose" in health["message"]
    for name in VLLM_CHECKS:
        assert run.status(name) == "skip"
        assert "vllm.health" in run.check(name)["message"]
    for name in ["webui.health", "webui.signin", "webui.signup_closed"]:
        assert run.status(name) == "pass", run.table
    assert run.status("webui.chat") == "fail"
