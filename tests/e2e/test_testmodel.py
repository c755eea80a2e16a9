"""The offline test models and the R1 tools template, with the real transformers and
tokenizer (from the cached vLLM env)."""

from __future__ import annotations

import json
import subprocess

from r1deploy.testmodel import script
from tests.e2e import stack as stacklib
from tests.unit.test_chat_template import ROUND_TRIP, TEMPLATE, render

HELPER = stacklib.REPO / "tests" / "e2e" / "_in_vllm_env.py"


# A prompt per scripted reply: what a person types (or, for the tool result, the second
# round of a tool call).
REPLY_PROMPTS = {
    "default": [{"role": "user", "content": "Say hello in one short sentence."}],
    "maths": [{"role": "user", "content": script.MATHS_PROMPT}],
    "weather": [{"role": "user", "content": script.WEATHER_PROMPT}],
    "tool_result": ROUND_TRIP,
}


def _run_in_vllm_env(scripted_model, random_model) -> dict:
    request = {"messages": ROUND_TRIP, "tools": [script.TOOL], "reply_prompts": REPLY_PROMPTS}
    done = subprocess.run(
        [
            str(stacklib.VLLM_PYTHON),
            str(HELPER),
            str(scripted_model),
            str(random_model),
            str(TEMPLATE),
            json.dumps(request),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_models_are_small_qwen2_and_the_scripted_one_says_its_script(scripted_model, random_model):
    result = _run_in_vllm_env(scripted_model, random_model)
    for kind in ("scripted", "random"):
        assert result[kind]["architecture"] == "Qwen2ForCausalLM"
        assert result[kind]["hidden_size"] == 128 and result[kind]["head_dim"] >= 32
    assert result["scripted"]["text"] == script.REASONING + "</think>" + script.ANSWER
    # Each reply, chosen by its trigger in the prompt, tools in the prompt too.
    for reply in script.REPLIES:
        said = result["replies"][reply.name]
        assert said == reply.reasoning_text + "</think>" + reply.answer_text, reply.name
    # Random weights: it generates, and not the script.
    assert result["random"]["new_tokens"] > 0
    assert result["random"]["text"] != result["scripted"]["text"]

    # The real tokenizer's apply_chat_template renders the template as the unit tests do.
    assert result["rendered"] == render(TEMPLATE, ROUND_TRIP, [script.TOOL])
    assert "<tool_response>\nParis: Sunny, +21°C\n</tool_response>" in result["rendered"]
    assert json.dumps(script.TOOL["function"]) in result["rendered"]
