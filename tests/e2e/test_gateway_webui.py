"""Real Open WebUI and the real gateway: the reconcile step registers the gateway, Open
WebUI fetches its spec and lists its tools, and a second reconcile changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from r1deploy.tools.export import to_openapi
from r1deploy.tools.validate import load_plugins
from r1deploy.webui.client import WebUIClient
from tests.e2e.gateway_fixtures import (
    ADMIN_EMAIL,
    TOOL_SERVER_ID,
    tool_server_connection,
    write_stack_dir,
)

pytestmark = pytest.mark.e2e
MODEL = "scripted-r1"


def reconcile_cli(stack_dir, *extra) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "webui",
            "reconcile",
            "--stack-dir",
            str(stack_dir),
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def admin(open_webui, keys) -> WebUIClient:
    client = WebUIClient(open_webui.url)
    client.sign_in(ADMIN_EMAIL, keys["WEBUI_ADMIN_PASSWORD"])
    return client


@pytest.fixture(scope="module")
def stack_dir(e2e_dir, keys, open_webui, gateway, tools_file):
    return write_stack_dir(
        e2e_dir / "stack",
        keys,
        webui_url=open_webui.url,
        gateway_url=gateway.url,
        vllm_url="http://127.0.0.1:18199",
        model=MODEL,
        tools_file=tools_file,
    )


def test_reconcile_changes_a_running_open_webui_and_a_second_run_changes_nothing(
    admin, stack_dir, keys, gateway
):
    # Drift a previous deploy or an admin could have left: signup opened in the UI.
    admin.set_admin_config({**admin.admin_config(), "ENABLE_SIGNUP": True})

    first = reconcile_cli(stack_dir)
    changed = {item["item"] for item in first["items"] if item["changed"]}
    assert changed == {"openai_connections", "tool_servers", "signup", "default_model"}
    assert first["ok"] is True, first

    openai = admin.openai_config()
    assert openai["OPENAI_API_BASE_URLS"] == ["http://127.0.0.1:18199/v1"]
    assert openai["OPENAI_API_KEYS"] == [keys["VLLM_API_KEY"]]
    [server] = admin.tool_servers()
    assert server["url"] == gateway.url
    assert server["key"] == keys["TOOLS_GATEWAY_KEY"]
    assert admin.admin_config()["ENABLE_SIGNUP"] is False
    assert admin.models_config()["DEFAULT_MODELS"] == MODEL

    second = reconcile_cli(stack_dir)
    assert second["changed"] is False, second
    assert all(not item["changed"] for item in second["items"])


def test_open_webui_verifies_the_gateway_and_lists_its_tools(
    admin, stack_dir, gateway, keys, tools_file
):
    reconcile_cli(stack_dir)  # registered, whatever ran before
    connection = {**tool_server_connection(gateway.url), "key": keys["TOOLS_GATEWAY_KEY"]}
    spec = admin.verify_tool_server(connection)
    assert spec == to_openapi(load_plugins(str(tools_file)))

    listed = {tool["id"]: tool for tool in admin.tools()}
    assert f"server:{TOOL_SERVER_ID}" in listed
    assert listed[f"server:{TOOL_SERVER_ID}"]["name"] == spec["info"]["title"]


def test_open_webui_cannot_verify_the_gateway_with_a_wrong_key(admin, gateway):
    connection = {**tool_server_connection(gateway.url), "key": "wrong"}
    with pytest.raises(Exception, match="HTTP 400"):
        admin.verify_tool_server(connection)


def test_gateway_calls_the_weather_plugin_against_stub_upstream(gateway, keys, weather_stub):
    answer = requests.post(
        f"{gateway.url}/tools/get_weather",
        json={"city": "Paris"},
        headers={"Authorization": f"Bearer {keys['TOOLS_GATEWAY_KEY']}"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.text == "Paris: Sunny, +21°C"
    assert weather_stub.seen[-1].path == "/weather/Paris"


def test_reconcile_keeps_the_admin_session_and_signs_in_only_when_it_ended(stack_dir, monkeypatch):
    """Open WebUI counts every sign-in against its rate limit; every deploy reconciles."""
    from r1deploy.webui import client as webui_client
    from r1deploy.webui.reconcile import SESSION_FILE, reconcile_stack

    reconcile_cli(stack_dir)
    kept = stack_dir / SESSION_FILE
    assert kept.stat().st_mode & 0o777 == 0o600
    token = kept.read_text().strip()

    signins = []
    real_post_signin = webui_client.post_signin

    def counted(*args, **kwargs):
        signins.append(args[2])
        return real_post_signin(*args, **kwargs)

    monkeypatch.setattr(webui_client, "post_signin", counted)
    assert reconcile_stack(str(stack_dir)).ok
    assert signins == [] and kept.read_text().strip() == token

    kept.write_text("a-session-that-ended\n")
    assert reconcile_stack(str(stack_dir)).ok
    assert signins == [ADMIN_EMAIL]
    assert kept.read_text().strip() not in ("", "a-session-that-ended")
