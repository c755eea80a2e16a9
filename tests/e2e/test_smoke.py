"""`r1deploy smoke` against the real vLLM and Open WebUI started from a stack directory."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from r1deploy.testmodel import script
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD
from tests.e2e.smokerun import run_smoke

EXPECTED_PASS = [
    "vllm.health",
    "vllm.models",
    "vllm.auth",
    "vllm.chat",
    "vllm.stream",
    "vllm.tool_call",
    "webui.health",
    "webui.signin",
    "webui.models",
    "webui.chat",
    "webui.ui_chat",
    "webui.signup_closed",
    "gateway.health",
    "webui.tool_server",
    "agent.round_trip",
    "frontdoor.tls",
    "frontdoor.redirect",
    "frontdoor.hidden_routes",
]


def test_smoke_passes_every_check_against_the_real_stack(stack):
    BUILD.mkdir(parents=True, exist_ok=True)
    junit = BUILD / "smoke-junit.xml"
    run = run_smoke(stack, "--junit", str(junit))
    assert run.exit_code == 0, run.table
    statuses = run.statuses()
    assert {name: statuses[name] for name in EXPECTED_PASS} == dict.fromkeys(
        EXPECTED_PASS, "pass"
    ), run.table
    # Skipped only where not asked for.
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
        "tool": script.TOOL_NAME,
        "arguments": {"city": script.TOOL_CITY},
    }
    # The context the role sized for the test model (its 8192 positions).
    assert run.check("vllm.models")["data"]["max_model_len"] == 8192
    # The chat page's path: the reconciled model entry (built-in tools off), the gateway's
    # tools switched on, the answer stored in the chat, the prompt within the budget.
    ui = run.check("webui.ui_chat")["data"]
    assert ui["content"] == script.ANSWER
    assert ui["builtin_tools"] is False and ui["tool_ids"] == ["server:r1deploy-tools"]
    assert (
        0 < ui["usage"]["prompt_tokens"] <= stacklib.read_settings(stack)["model"]["prompt_budget"]
    )


def test_a_second_reconcile_writes_nothing_to_the_real_open_webui(stack, monkeypatch):
    """The stack was reconciled when it came up: another run must read every item and
    write none (a write before the comparison would still report changed=False)."""
    from r1deploy.webui.client import WebUIClient
    from r1deploy.webui.reconcile import reconcile_stack

    writes = []
    post = WebUIClient.post

    def counting_post(self, path, body):
        if not path.endswith("/verify"):  # asking Open WebUI to fetch a spec changes nothing
            writes.append(path)
        return post(self, path, body)

    monkeypatch.setattr(WebUIClient, "post", counting_post)
    outcome = reconcile_stack(str(stack))
    assert outcome.ok and not outcome.changed, outcome.to_dict()
    assert writes == []
