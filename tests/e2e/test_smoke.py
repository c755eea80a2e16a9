"""`r1deploy smoke` against the real vLLM and Open WebUI started from a stack directory."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from r1deploy.testmodel import script
from tests.e2e.conftest import BUILD
from tests.e2e.smokerun import run_smoke

EXPECTED_PASS = [
    "vllm.health", "vllm.models", "vllm.auth", "vllm.chat", "vllm.stream", "vllm.tool_call",
    "webui.health", "webui.signin", "webui.models", "webui.chat", "webui.signup_closed",
]


def test_smoke_passes_every_check_against_the_real_stack(stack):
    BUILD.mkdir(parents=True, exist_ok=True)
    junit = BUILD / "smoke-junit.xml"
    run = run_smoke(stack, "--junit", str(junit))
    assert run.exit_code == 0, run.table
    statuses = run.statuses()
    assert {name: statuses[name] for name in EXPECTED_PASS} == dict.fromkeys(EXPECTED_PASS,
                                                                             "pass"), run.table
    # Skipped only where the feature is off (no gateway here) or not asked for.
    assert statuses["webui.tool_server"] == "skip"
    assert "gateway is disabled" in run.check("webui.tool_server")["message"]
    assert statuses["quality"] == "skip"
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == str(len(statuses)) and suite.get("failures") == "0"


def test_smoke_sees_the_scripted_model_say_exactly_its_script(stack):
    run = run_smoke(stack, "--only", "vllm.", "--only", "webui.")
    chat = run.check("vllm.chat")["data"]
    assert chat["reasoning"] == script.REASONING
    assert chat["content"] == script.ANSWER
    assert run.check("webui.chat")["data"]["content"] == script.ANSWER
    stream = run.check("vllm.stream")["data"]
    assert stream["text"] == script.REASONING + script.ANSWER
    assert stream["ttft_s"] > 0
    assert run.check("vllm.tool_call")["data"] == {
        "tool": script.TOOL_NAME, "arguments": {"city": script.TOOL_CITY}}
    assert run.check("vllm.models")["data"]["max_model_len"] == 4096
