"""What the scripted test model says: importable without torch, so tests and checks can
assert exact content against these constants.

Greedy decoding (and the default temperature 0.6 / top_p 0.95, thanks to the logit
margins) always yields ``REASONING`` between ``<think>``/``</think>`` then ``ANSWER``. Under
vLLM's structured outputs with the strict named tool choice of ``TOOL`` the answer is
masked away and the model calls ``TOOL`` with ``TOOL_ARGUMENTS``.
"""

from __future__ import annotations

import json

KINDS = ("random", "scripted")

# Every token of these texts must be unique across the whole script: the scripted model
# is a bigram chain (the next token depends on the current one only). The builder checks it.
REASONING = "Scripted reasoning: recall the fixed reply, then state it"
ANSWER = "The scripted answer is 42."
TOOL_NAME = "get_weather"
TOOL_CITY = "Paris"
# As vLLM's hermes parser hands them back (json.dumps of the parsed arguments).
TOOL_ARGUMENTS = json.dumps({"city": TOOL_CITY})

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
