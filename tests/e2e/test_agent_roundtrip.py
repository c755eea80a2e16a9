"""`r1deploy agent` against real vLLM (tiny scripted model, strict named tool choice): one
tool round-trip through the real gateway, whose weather upstream is a local stub (the real
API is not reachable here), then the final answer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from r1deploy.testmodel import script
from tests.e2e.gateway_fixtures import write_stack_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def agent_stack(e2e_dir, keys, vllm, gateway, tools_file):
    return write_stack_dir(
        e2e_dir / "agent-stack",
        {**keys, "VLLM_API_KEY": vllm.key},
        webui_url="http://127.0.0.1:18198",  # not used by the agent
        gateway_url=gateway.url,
        vllm_url=vllm.url,
        model=vllm.model,
        tools_file=tools_file,
    )


def agent(stack, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "agent",
            "What is the weather in Paris?",
            "--stack-dir",
            str(stack),
            "--tool-choice",
            script.TOOL_NAME,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_agent_makes_one_tool_round_trip_and_prints_the_answer_against_stub_upstream(
    agent_stack, weather_stub
):
    before = len(weather_stub.seen)
    done = agent(agent_stack)
    assert done.returncode == 0, done.stderr
    # The answer alone on stdout; reasoning and the tool call apart, on stderr. The scripted
    # model reasons about the weather first, then, given the tool's result, answers.
    assert done.stdout.strip() == script.TOOL_RESULT.answer_text
    assert script.WEATHER.reasoning_text in done.stderr
    assert script.TOOL_RESULT.reasoning_text in done.stderr
    assert f"[tool] {script.TOOL_NAME}(" in done.stderr
    assert "HTTP 200: Paris: Sunny, +21°C" in done.stderr
    calls = weather_stub.seen[before:]
    assert [c.path for c in calls] == [f"/weather/{script.TOOL_CITY}"]


def test_agent_json_shows_the_tool_message_fed_back_against_stub_upstream(agent_stack):
    done = agent(agent_stack, "--format", "json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    [tool_run] = run["tool_runs"]
    assert tool_run["name"] == script.TOOL_NAME
    assert json.loads(tool_run["arguments"]) == {"city": script.TOOL_CITY}
    assert (tool_run["status"], tool_run["result"]) == (200, "Paris: Sunny, +21°C")
    assert len(run["rounds"]) == 2
    assert run["rounds"][0]["tool_calls"] and not run["rounds"][1]["tool_calls"]
    assert run["answer"] == script.TOOL_RESULT.answer_text


def test_smoke_agent_round_trip_check_passes_against_stub_upstream(agent_stack):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "smoke",
            "--stack-dir",
            str(agent_stack),
            "--only",
            "vllm.health",
            "--only",
            "vllm.tool_call",
            "--only",
            "gateway.health",
            "--only",
            "agent.",
            "--tool",
            script.TOOL_NAME,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["agent.round_trip"]["status"] == "pass", done.stderr
    assert done.returncode == 0, done.stderr
    assert checks["agent.round_trip"]["data"]["answer"] == script.TOOL_RESULT.answer_text
