"""roles/r1_stack sizes the context (max_model_len) to the host and checks that a prompt with
the tools plus an answer fits (filter r1_stack_context_budget, facts from
r1deploy/model_facts.json)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from r1deploy import modelfacts

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "r1_stack_filters", ROOT / "roles/r1_stack/filter_plugins/r1_stack.py"
)
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)

R1 = modelfacts.model(modelfacts.R1_DISTILL)
SHIPPED_TOOLS = json.loads((ROOT / "tools.json").read_text())


def budget(**over) -> dict:
    inputs = {
        "model_id": modelfacts.R1_DISTILL,
        "facts": R1,
        "constants": modelfacts.context_budget(),
        "max_model_len": "auto",
        "max_tokens": "auto",
        "profile": "gpu",
        "gpu_memory_mib": 0,
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.9,
        "plugins": SHIPPED_TOOLS,
        "builtin_tools": False,
    }
    return stack.r1_stack_context_budget(inputs | over)


def test_the_kv_cache_of_the_r1_distill_is_28672_bytes_a_token():
    # 2 (K, V) x 28 layers x 2 KV heads x 128 dims x 2 bytes (bf16)
    assert stack._kv_bytes_per_token(R1) == modelfacts.kv_bytes_per_token(R1) == 28_672


# Memory as nvidia-smi reports it (memory.total, MiB) for the product guide's GPUs.
@pytest.mark.parametrize(
    ("gpu", "memory_mib", "expected"),
    [
        # 12 GiB x 0.9 - 3.3 GiB weights - 1 GiB runtime = 6.5 GiB: 8 x 32768 tokens needs 7 GiB
        ("RTX 3060 12 GB", 12288, 16384),
        ("RTX 4090 24 GB", 24564, 32768),
        ("A100 80 GB", 81920, 32768),
        ("H100 80 GB", 81559, 32768),
        # 8 GiB x 0.9 leaves 2.9 GiB: 8 x 16384 tokens needs 3.5 GiB
        ("RTX 3070 8 GB", 8192, 8192),
    ],
)
def test_gpu_profile_takes_the_largest_context_that_fits_eight_full_sequences(
    gpu, memory_mib, expected
):
    result = budget(gpu_memory_mib=memory_mib)
    assert result["max_model_len"] == expected, result["reason"]
    assert result["errors"] == [] and result["warnings"] == []
    assert f"{memory_mib} MiB" in result["reason"] and "28,672 bytes a token" in result["reason"]


def test_a_lower_memory_utilization_gives_a_smaller_context():
    assert budget(gpu_memory_mib=24564, gpu_memory_utilization=0.4)["max_model_len"] == 16384


def test_tensor_parallel_gpus_add_their_memory():
    assert budget(gpu_memory_mib=8192)["max_model_len"] == 8192
    assert budget(gpu_memory_mib=8192, tensor_parallel_size=2)["max_model_len"] == 32768


def test_a_gpu_too_small_for_eight_sequences_gets_the_smallest_context_and_says_so():
    result = budget(gpu_memory_mib=6144)
    assert result["max_model_len"] == 8192
    assert "does not fit 8 full-length sequences" in result["reason"]


def test_unknown_gpu_memory_takes_the_smallest_context_and_says_how_to_size_it():
    result = budget(gpu_memory_mib=0)
    assert result["max_model_len"] == 8192
    assert "r1_stack_gpu_memory_mib" in result["reason"]


def test_cpu_profile_takes_8192_tokens():
    result = budget(profile="cpu", gpu_memory_mib=81920)
    assert result["max_model_len"] == 8192
    assert result["reason"].startswith("cpu profile")


def test_the_test_model_is_held_to_its_own_8192_positions():
    facts = modelfacts.model(modelfacts.TEST_MODEL)
    result = budget(model_id=modelfacts.TEST_MODEL, facts=facts, gpu_memory_mib=81920)
    assert result["max_model_len"] == facts["max_position_embeddings"] == 8192


def test_a_forced_context_is_kept_and_named():
    result = budget(max_model_len=24000, gpu_memory_mib=12288)
    assert result["max_model_len"] == 24000
    assert "r1_stack_max_model_len" in result["reason"]


def test_max_tokens_is_what_the_context_leaves_after_a_question_and_the_tools():
    result = budget(profile="cpu")
    constants = modelfacts.context_budget()
    assert result["prompt_tokens"] > constants["question_tokens"]  # the tools count
    assert result["max_tokens"] == 8192 - result["prompt_tokens"]
    without_tools = budget(profile="cpu", plugins=[])
    assert without_tools["prompt_tokens"] == constants["question_tokens"]


def test_builtin_tools_on_a_cpu_context_are_refused_with_the_fix():
    # ~8,300 tokens of Open WebUI's built-in tools: no room left in 8192 (the demo's failure).
    result = budget(profile="cpu", builtin_tools=True)
    [error] = result["errors"]
    assert "does not fit max_model_len 8192" in error
    assert "turn off r1_stack_webui_builtin_tools" in error


def test_builtin_tools_fit_a_32k_context():
    result = budget(gpu_memory_mib=81920, builtin_tools=True)
    assert result["max_model_len"] == 32768 and result["errors"] == []


def test_a_forced_context_too_small_for_the_prompt_warns_instead_of_refusing():
    result = budget(max_model_len=3072)
    assert result["errors"] == []
    [warning] = result["warnings"]
    assert "does not fit max_model_len 3072" in warning
    assert "raise r1_stack_max_model_len" in warning


def test_a_forced_max_tokens_beyond_the_context_warns():
    result = budget(profile="cpu", max_tokens=8000)
    assert result["max_tokens"] == 8000
    assert "lower r1_stack_webui_max_tokens" in result["warnings"][0]


def test_a_model_without_facts_needs_a_forced_context():
    result = budget(model_id="someone/other-model", facts=None)
    [error] = result["errors"]
    assert "not in r1deploy/model_facts.json" in error and "r1_stack_max_model_len" in error
    forced = budget(model_id="someone/other-model", facts=None, max_model_len=16384)
    assert forced["max_model_len"] == 16384 and forced["errors"] == []
