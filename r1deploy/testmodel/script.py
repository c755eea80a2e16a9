"""What the scripted test model says: importable without torch, so tests and checks can
assert exact content against these constants.

The model has one fixed reply per prompt kind. A reply is chosen by a *trigger*, a text
that is a single token of its own, found anywhere in the prompt; no trigger, the default
reply. Greedy decoding (and the default temperature 0.6 / top_p 0.95, thanks to the logit
margins) always yields the reply's ``reasoning`` between ``<think>``/``</think>`` then its
``answer``. Under vLLM's structured outputs with the strict named tool choice of ``TOOL``
the answer is masked away and the model calls ``TOOL`` with ``TOOL_ARGUMENTS``.

The replies cover what a person does first in Open WebUI (see tests/e2e/test_journeys.py):
- the product guide's maths problem: steps in LaTeX (KaTeX in the chat), ``\\boxed{}``;
- the weather in Paris: a hermes tool call of ``get_weather`` under ``tool_choice: auto``;
- after a tool result (``<tool_response>`` in the prompt): an answer that points at it.
Triggers are chosen so the shipped tools' descriptions never contain one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

KINDS = ("random", "scripted")


@dataclass(frozen=True)
class Reply:
    """One scripted reply: what selects it, what the model thinks, then answers.

    ``reasoning`` and ``answer`` are lists of chunks. The default reply's chunks are plain
    text whose tokens are unique across it (the tokenizer is trained to make whole words
    tokens); every other reply's chunks become tokens of their own, so their text may
    repeat characters freely. ``priority`` decides when triggers of several replies are in
    one prompt: the higher wins.
    """

    name: str
    trigger: str | None
    reasoning: tuple[str, ...]
    answer: tuple[str, ...]
    priority: int = 0

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)


# Every token of the default texts must be unique across them: the scripted model is a
# bigram chain (the next token depends on the current one, and the reply). The builder
# checks it.
REASONING = "Scripted reasoning: recall the fixed reply, then state it"
ANSWER = "The scripted answer is 42."
TOOL_NAME = "get_weather"
TOOL_CITY = "Paris"
# As vLLM's hermes parser hands them back (json.dumps of the parsed arguments).
TOOL_ARGUMENTS = json.dumps({"city": TOOL_CITY})

DEFAULT = Reply("default", None, (REASONING,), (ANSWER,))

# The product guide's worked problem: f(x) = x^3 - 3x^2 + 2 on [-1, 3].
MATHS_PROMPT = "Find the maximum and minimum of f(x) = x^3 - 3x^2 + 2 on [-1, 3]. Show your steps."
# The trigger avoids the formula: Open WebUI's chat input turns a typed x^3 into x³.
MATHS = Reply(
    "maths",
    "maximum and minimum",
    (
        "On a closed interval the extrema are at critical points or at the endpoints. ",
        "The derivative 3x^2 - 6x = 3x(x - 2) vanishes at x = 0 and x = 2. ",
        "Values: f(-1) = -2, f(0) = 2, f(2) = -2, f(3) = 2.",
    ),
    (
        "**Step 1.** The derivative is $$f'(x) = 3x^2 - 6x = 3x(x - 2),$$ "
        "so the critical points are \\(x = 0\\) and \\(x = 2\\).\n\n",
        "**Step 2.** Evaluate at the critical points and the endpoints: "
        "$$f(-1) = -2,\\quad f(0) = 2,\\quad f(2) = -2,\\quad f(3) = 2.$$\n\n",
        "**Answer.** $$\\boxed{\\text{max} = 2,\\ \\text{min} = -2}$$",
    ),
    priority=1,
)

WEATHER_PROMPT = "What is the weather in Paris?"
# The hermes call as vLLM's parser reads it (the tool parser needs the literal tags).
TOOL_CALL_TEXT = '\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
WEATHER = Reply(
    "weather",
    "weather in Paris",
    ("The user asks for the current conditions in a city; the get_weather tool gives them.",),
    ("<tool_call>", TOOL_CALL_TEXT, "</tool_call>"),
    priority=1,
)

# A tool result in the prompt wins over the question that asked for it, so the second
# round of a tool call ends with an answer instead of calling the tool again.
TOOL_RESULT = Reply(
    "tool_result",
    "<tool_response>",
    ("A tool has answered; I pass its result on.",),
    ("Here is what the tool reported: see its result in the tool call above.",),
    priority=2,
)

REPLIES = (DEFAULT, MATHS, WEATHER, TOOL_RESULT)

# The tool that the scripted model can call (OpenAI "tools" entry, strict so vLLM holds the
# arguments to the schema).
TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def reply_for(prompt: str) -> Reply:
    """The reply the scripted model gives to a rendered prompt (what the weights do)."""
    found = [r for r in REPLIES if r.trigger and r.trigger in prompt]
    return max(found, key=lambda r: r.priority, default=DEFAULT)
