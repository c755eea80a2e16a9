"""The R1 tools chat template (compose/chat_template_r1_tools.jinja) renders tools, tool
calls and tool results in the hermes format that vLLM's `--tool-call-parser hermes` parses.

Rendered with jinja2 the way transformers' `apply_chat_template` does (sandboxed,
trim_blocks/lstrip_blocks, `tojson` = json.dumps); the e2e tier renders it with a real
tokenizer too (tests/e2e/test_chat_template.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from r1deploy.testmodel import script

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "compose" / "chat_template_r1_tools.jinja"
R1_TEMPLATE = REPO / "r1deploy" / "testmodel" / "r1_distill_chat_template.jinja"
BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
# What vLLM's hermes parser looks for.
HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def render(template: Path, messages: list[dict], tools=None, add_generation_prompt=True) -> str:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = lambda value, indent=None: json.dumps(
        value, ensure_ascii=False, indent=indent
    )
    return env.from_string(template.read_text(encoding="utf-8")).render(
        messages=messages,
        tools=tools,
        bos_token=BOS,
        eos_token=EOS,
        add_generation_prompt=add_generation_prompt,
    )


WEATHER_CALL = {
    "id": "call-1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
ROUND_TRIP = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [WEATHER_CALL]},
    {"role": "tool", "tool_call_id": "call-1", "content": "Paris: Sunny, +21°C"},
]


def test_prompt_lists_every_tool_schema_inside_tools_tags():
    tools = [
        script.TOOL,
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Time in a zone",
                "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
            },
        },
    ]
    prompt = render(TEMPLATE, ROUND_TRIP[:1], tools)
    block = prompt[prompt.index("<tools>\n") : prompt.index("\n</tools>")]
    for tool in tools:
        assert json.dumps(tool["function"], ensure_ascii=False) in block
    assert (
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        in prompt
    )
    assert prompt.startswith(BOS + "# Tools")
    assert prompt.endswith("<｜User｜>What is the weather in Paris?<｜Assistant｜><think>\n")


def test_past_tool_call_renders_as_hermes_json_that_parses_back():
    prompt = render(TEMPLATE, ROUND_TRIP, [script.TOOL])
    conversation = prompt[prompt.index("<｜User｜>") :]  # after the tools instructions
    calls = [json.loads(body) for body in HERMES_CALL.findall(conversation)]
    assert calls == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


@pytest.mark.parametrize("arguments", ['{"city": "Paris"}', {"city": "Paris"}])
def test_tool_call_arguments_as_string_or_object_render_the_same(arguments):
    call = {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    prompt = render(
        TEMPLATE,
        [ROUND_TRIP[0], {"role": "assistant", "content": None, "tool_calls": [call]}],
        [script.TOOL],
    )
    assert (
        '<｜Assistant｜><tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call><｜end▁of▁sentence｜>'
    ) in prompt


def test_tool_results_come_back_in_tool_response_tags_in_one_user_turn():
    messages = [*ROUND_TRIP, {"role": "tool", "tool_call_id": "call-2", "content": "Lima: fog"}]
    prompt = render(TEMPLATE, messages, [script.TOOL])
    assert prompt.endswith(
        "<｜User｜><tool_response>\nParis: Sunny, +21°C\n</tool_response>\n"
        "<tool_response>\nLima: fog\n</tool_response><｜Assistant｜><think>\n"
    )


def test_final_answer_after_tools_drops_the_reasoning_like_the_r1_template():
    messages = [
        *ROUND_TRIP,
        {"role": "assistant", "content": "I looked it up.</think>Sunny."},
        {"role": "user", "content": "Thanks"},
    ]
    prompt = render(TEMPLATE, messages, [script.TOOL])
    assert "<｜Assistant｜>Sunny.<｜end▁of▁sentence｜><｜User｜>Thanks" in prompt
    assert "I looked it up" not in prompt


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "<think>\nx\n</think>\n\nHello!"},
            {"role": "user", "content": "again"},
        ],
    ],
)
def test_without_tools_the_prompt_is_the_r1_distill_one(messages):
    assert render(TEMPLATE, messages) == render(R1_TEMPLATE, messages)
