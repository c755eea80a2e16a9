"""The scripted test model's replies (r1deploy/testmodel/script.py), checked without torch:
which prompt selects which reply, and that each reply is what the journeys need it to be.
The e2e tier checks that the built weights say exactly these texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1deploy.smoke.checks import parse_extrema
from r1deploy.testmodel import script
from r1deploy.tools import load_plugins, to_openai
from tests.unit.test_chat_template import HERMES_CALL, ROUND_TRIP, TEMPLATE, render

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TOOLS = to_openai(load_plugins(str(REPO / "tools.json")))


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"role": "user", "content": "Say hello in one short sentence."}], script.DEFAULT),
        ([{"role": "user", "content": script.MATHS_PROMPT}], script.MATHS),
        # Open WebUI's chat input turns a typed x^3 into x³: the trigger is in the words.
        (
            [{"role": "user", "content": "Find the maximum and minimum of x³ - 3x² + 2."}],
            script.MATHS,
        ),
        ([{"role": "user", "content": script.WEATHER_PROMPT}], script.WEATHER),
        ([{"role": "user", "content": "What is the weather in Paris right now?"}], script.WEATHER),
        # The second round of a tool call answers instead of calling the tool again.
        (ROUND_TRIP, script.TOOL_RESULT),
    ],
)
def test_the_prompt_selects_the_reply_even_with_every_shipped_tool_in_it(messages, expected):
    prompt = render(TEMPLATE, messages, SHIPPED_TOOLS)
    assert script.reply_for(prompt) is expected


def test_no_shipped_tool_description_holds_a_trigger():
    tools_block = render(TEMPLATE, [{"role": "user", "content": "hi"}], SHIPPED_TOOLS)
    assert script.reply_for(tools_block) is script.DEFAULT


def test_no_reply_says_a_trigger_of_another():
    for reply in script.REPLIES:
        said = reply.reasoning_text + reply.answer_text
        assert [r.name for r in script.REPLIES if r.trigger and r.trigger in said] == [], reply


def test_the_weather_reply_is_a_hermes_call_of_get_weather_for_paris():
    [body] = HERMES_CALL.findall(script.WEATHER.answer_text)
    call = json.loads(body)
    assert call == {"name": script.TOOL_NAME, "arguments": {"city": script.TOOL_CITY}}
    assert json.dumps(call["arguments"]) == script.TOOL_ARGUMENTS


def test_the_maths_reply_answers_the_product_guides_problem_in_latex():
    answer = script.MATHS.answer_text
    assert parse_extrema(answer) == (2, -2)
    assert answer.count("$$") >= 4 and "\\boxed{" in answer


def test_the_builder_cli_imports_with_the_standard_library_alone():
    """`r1deploy testmodel build` runs in the vLLM image (tasks/run.yml), which has torch but
    none of r1deploy's dependencies: its import chain must need nothing else."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r}); import r1deploy.testmodel.cli",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
