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
    return (
        2
        * facts["num_hidden_layers"]
        * facts["num_key_value_heads"]
        * facts["head_dim"]
        * facts["dtype_bytes"]
    )


def find(name: str) -> tuple[str, dict] | None:
    """The id and facts of the model ``name`` names: a model id of the file, or a path or id
    whose last part is that of one (``/models/DeepSeek-R1-Distill-Qwen-1.5B``), in any case;
    None when the file knows no such model."""
    models = _all()["models"]
    if name in models:
        return name, models[name]
    last = name.rstrip("/").rsplit("/", 1)[-1].lower()
    for model_id, facts in models.items():
        if last and model_id.rsplit("/", 1)[-1].lower() == last:
            return model_id, facts
    return None
