"""roles/r1_stack: what happens to each generated secret given the controller's files and the
host's .env (filter r1_stack_secrets_plan). A secret the controller holds is never generated
again; one only the host has is adopted; one that differs stops the run unless rotated."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "r1_stack_filters", ROOT / "roles/r1_stack/filter_plugins/r1_stack.py"
)
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)

NAMES = {
    "vllm_api_key": "VLLM_API_KEY",
    "webui_secret_key": "WEBUI_SECRET_KEY",
    "webui_admin_password": "WEBUI_ADMIN_PASSWORD",
    "tools_gateway_key": "TOOLS_GATEWAY_KEY",
}
HOST_ENV = """# Rendered by roles/r1_stack for h. Secrets: keep mode 0600, never commit.
VLLM_API_KEY='v-host'
WEBUI_SECRET_KEY='w-host'
WEBUI_ADMIN_EMAIL='admin@r1deploy.local'
WEBUI_ADMIN_PASSWORD='p-host'
TOOLS_GATEWAY_KEY='g-host'
"""
HOST = stack.r1_stack_parse_env(HOST_ENV)


def test_the_env_file_is_read_as_the_role_writes_it():
    assert HOST["VLLM_API_KEY"] == "v-host" and HOST["WEBUI_ADMIN_EMAIL"] == "admin@r1deploy.local"
    assert "# Rendered by roles/r1_stack for h. Secrets" not in " ".join(HOST)


def test_a_new_host_and_a_new_controller_generate_everything():
    plan = stack.r1_stack_secrets_plan(NAMES, {}, {})
    assert sorted(plan["generate"]) == sorted(NAMES) and plan["adopt"] == {}


def test_secrets_the_controller_holds_are_never_generated_again():
    controller = {"vllm_api_key": "v", "webui_secret_key": "w"}
    for host in ({}, stack.r1_stack_parse_env("VLLM_API_KEY='v'\nWEBUI_SECRET_KEY='w'\n")):
        plan = stack.r1_stack_secrets_plan(NAMES, controller, host)
        assert not set(plan["generate"]) & set(controller)
        assert set(plan["keep"]) == set(controller)


def test_a_controller_without_secrets_adopts_the_hosts():
    plan = stack.r1_stack_secrets_plan(NAMES, {}, HOST)
    assert plan["adopt"] == {
        "vllm_api_key": "v-host",
        "webui_secret_key": "w-host",
        "webui_admin_password": "p-host",
        "tools_gateway_key": "g-host",
    }
    assert plan["generate"] == [] and plan["mismatch"] == []


def test_a_controller_whose_secret_differs_from_the_hosts_is_a_mismatch():
    controller = {
        "vllm_api_key": "v-other",
        "webui_secret_key": "w-host",
        "webui_admin_password": "p-host",
        "tools_gateway_key": "g-host",
    }
    plan = stack.r1_stack_secrets_plan(NAMES, controller, HOST)
    assert plan["mismatch"] == ["vllm_api_key"]
    assert plan["adopt"] == {} and plan["generate"] == []


def test_a_rotation_lets_that_one_secret_differ_and_only_it():
    controller = {
        "vllm_api_key": "v-new",
        "webui_secret_key": "w-other",
        "webui_admin_password": "p-host",
        "tools_gateway_key": "g-host",
    }
    plan = stack.r1_stack_secrets_plan(NAMES, controller, HOST, ["vllm_api_key"])
    assert plan["rotate"] == ["vllm_api_key"] and plan["mismatch"] == ["webui_secret_key"]


def test_a_gateway_key_the_host_does_not_have_is_generated():
    # A stack deployed with the gateway off, now turned on.
    host = {k: v for k, v in HOST.items() if k != "TOOLS_GATEWAY_KEY"}
    plan = stack.r1_stack_secrets_plan(NAMES, {}, host)
    assert plan["generate"] == ["tools_gateway_key"]
