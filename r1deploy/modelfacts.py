"""Facts about the models r1deploy serves (r1deploy/model_facts.json): architecture numbers,
context limit, recommended sampling, weight size. roles/r1_stack reads the same file, so
neither keeps a copy of its own."""

from __future__ import annotations

import functools
import json
from pathlib import Path

FACTS_FILE = Path(__file__).with_name("model_facts.json")
R1_DISTILL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
TEST_MODEL = "r1deploy/test-model"


@functools.cache
def _all() -> dict:
    return json.loads(FACTS_FILE.read_text(encoding="utf-8"))


def model(model_id: str) -> dict:
    """The facts of one model; KeyError names the file when it has none."""
    try:
        return _all()["models"][model_id]
    except KeyError:
        raise KeyError(f"{FACTS_FILE} has no facts for {model_id!r}") from None


def context_budget() -> dict:
    """The constants roles/r1_stack sizes max_model_len with (docs/context-budget.md)."""
    return _all()["context_budget"]


def kv_bytes_per_token(facts: dict) -> int:
    """K and V of every layer and KV head, a token: 28,672 bytes for the R1 distill (bf16)."""
    return (2 * facts["num_hidden_layers"] * facts["num_key_value_heads"] * facts["head_dim"]
            * facts["dtype_bytes"])
