"""What the reconcile step wants, read from a stack directory's files."""

from __future__ import annotations

import json

import pytest
import yaml

from r1deploy.stackdir import StackDir, StackDirError
from r1deploy.webui.reconcile import desired_from_stack, interpolate

CONNECTION = {
    "url": "http://tools-gateway:8090",
    "path": "openapi.json",
    "type": "openapi",
    "auth_type": "bearer",
    "key": "${TOOLS_GATEWAY_KEY:?TOOLS_GATEWAY_KEY is missing from .env}",
    "config": {"enable": True},
    "info": {"id": "r1deploy-tools", "name": "r1deploy tools"},
}


def write_stack(root, environment: dict, env_lines: str) -> StackDir:
    (root / "settings.json").write_text(
        json.dumps(
            {
                "webui": {"service": "open-webui", "url": "http://127.0.0.1:3000"},
                "model": {"served_name": "r1"},
            }
        )
    )
    compose = {"services": {"open-webui": {"image": "x", "environment": environment}}}
    (root / "compose.yaml").write_text(yaml.safe_dump(compose))
    (root / ".env").write_text(env_lines)
    return StackDir.load(root)


def test_desired_state_is_the_webui_environment_with_secrets_filled_in(tmp_path):
    stack = write_stack(
        tmp_path,
        {
            "OPENAI_API_BASE_URL": "http://vllm:8000/v1",
            "OPENAI_API_KEY": "${VLLM_API_KEY:?VLLM_API_KEY is missing from .env}",
            "TOOL_SERVER_CONNECTIONS": json.dumps([CONNECTION]),
            "ENABLE_SIGNUP": "false",
            "DEFAULT_MODELS": "deepseek-r1-distill-qwen-1.5b",
        },
        "VLLM_API_KEY='vk'\nTOOLS_GATEWAY_KEY='gk'\n",
    )
    desired = desired_from_stack(stack)
    assert desired.openai_base_urls == ["http://vllm:8000/v1"]
    assert desired.openai_api_keys == ["vk"]
    assert desired.enable_signup is False
    assert desired.default_models == "deepseek-r1-distill-qwen-1.5b"
    [server] = desired.tool_servers
    assert server["key"] == "gk"
    # Open WebUI stores these defaults; comparing without them would never settle.
    assert server["forward_cookies"] is False and server["headers"] is None


def test_several_backends_pair_urls_and_keys(tmp_path):
    stack = write_stack(
        tmp_path,
        {"OPENAI_API_BASE_URLS": "http://a:8000/v1;http://b:8000/v1", "OPENAI_API_KEYS": "k1"},
        "",
    )
    desired = desired_from_stack(stack)
    assert desired.openai_base_urls == ["http://a:8000/v1", "http://b:8000/v1"]
    assert desired.openai_api_keys == ["k1", ""]
    assert desired.default_models == "r1"  # from settings.json when the env has none


def test_a_secret_missing_from_env_is_named(tmp_path):
    stack = write_stack(
        tmp_path, {"OPENAI_API_KEY": "${VLLM_API_KEY:?VLLM_API_KEY is missing from .env}"}, ""
    )
    with pytest.raises(StackDirError, match="VLLM_API_KEY is missing"):
        desired_from_stack(stack)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"),
        ("$A/x", "a/x"),
        ("$$A", "$A"),
        ("${B:-dflt}", "dflt"),
        ("${E:-dflt}", "dflt"),
        ("${E-dflt}", ""),
        ("pre ${A} post", "pre a post"),
    ],
)
def test_compose_interpolation(text, expected):
    assert interpolate(text, {"A": "a", "E": ""}, "here") == expected


def test_missing_stack_dir_says_render_first(tmp_path):
    with pytest.raises(StackDirError, match="render the stack first"):
        StackDir.load(tmp_path / "nowhere")
