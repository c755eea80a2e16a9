"""roles/r1_stack chooses the cpu profile's engine from the host's preflight facts
(filter r1_stack_cpu_engine), sizes llama.cpp's parallel slots to its memory
(r1_stack_llamacpp_parallel) and renders llama.cpp's flags as the vLLM contract's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from r1deploy import modelfacts

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "r1_stack_filters", ROOT / "roles/r1_stack/filter_plugins/r1_stack.py"
)
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)

AVX2_FLAGS = ["fpu", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"]


def engine(**over) -> dict:
    facts = {
        "asked": "auto",
        "profile": "cpu",
        "runtime": "native",
        "architecture": "x86_64",
        "cpu_flags": AVX2_FLAGS,
        "memory_mib": 32768,
        "memory_threshold_mib": 16384,
    }
    return stack.r1_stack_cpu_engine(facts | over)


def test_a_big_x86_host_with_avx2_gets_vllm_cpu():
    chosen = engine()
    assert chosen["engine"] == "vllm" and chosen["errors"] == []
    assert "AVX2" in chosen["reason"] and "32768 MiB" in chosen["reason"]


def test_a_host_without_avx2_gets_llama_cpp():
    chosen = engine(cpu_flags=["fpu", "sse4_2", "avx"])
    assert chosen["engine"] == "llama_cpp"
    assert "no AVX2" in chosen["reason"]


@pytest.mark.parametrize("arch", ["aarch64", "armv7l", "riscv64"])
def test_a_host_that_is_not_x86_gets_llama_cpp(arch):
    chosen = engine(architecture=arch, cpu_flags=["fp", "asimd"])
    assert chosen["engine"] == "llama_cpp" and arch in chosen["reason"]


def test_a_host_under_the_memory_threshold_gets_llama_cpp():
    chosen = engine(memory_mib=8000)
    assert chosen["engine"] == "llama_cpp"
    assert "8000 MiB" in chosen["reason"] and "r1_stack_cpu_engine_memory_mib" in chosen["reason"]


@pytest.mark.parametrize("unknown", [{"architecture": ""}, {"cpu_flags": None}, {"memory_mib": 0}])
def test_a_host_not_known_here_gets_llama_cpp_which_runs_everywhere(unknown):
    chosen = engine(**unknown)
    assert chosen["engine"] == "llama_cpp" and "not known" in chosen["reason"]


def test_the_docker_runtime_runs_the_llama_cpp_image():
    assert engine(runtime="docker")["engine"] == "llama_cpp"
    refused = engine(runtime="docker", asked="vllm")
    assert refused["errors"] and "llama.cpp server image" in refused["errors"][0]


def test_vllm_asked_where_it_cannot_run_is_refused_with_the_fix():
    refused = engine(asked="vllm", architecture="aarch64")
    assert "x86-64 with AVX2" in refused["errors"][0]
    assert "r1_stack_cpu_engine to auto or llama_cpp" in refused["errors"][0]
    assert engine(asked="vllm", cpu_flags=["sse4_2"])["errors"]


def test_an_engine_asked_for_is_kept_and_the_gpu_profile_is_vllm():
    assert engine(asked="llama_cpp")["engine"] == "llama_cpp"
    assert engine(asked="vllm")["engine"] == "vllm"
    assert engine(profile="gpu", architecture="aarch64")["engine"] == "vllm"


def parallel(**over) -> dict:
    inputs = {
        "asked": "auto",
        "facts": modelfacts.model(modelfacts.R1_DISTILL),
        "constants": modelfacts.context_budget(),
        "max_model_len": 8192,
        "memory_mib": 4096,
    }
    return stack.r1_stack_llamacpp_parallel(inputs | over)


def test_parallel_slots_are_sized_to_the_memory():
    # R1 distill: 28 KiB of f16 KV a token, 224 MiB a slot of 8192; 1/8 of 4 GiB holds 2.
    assert parallel()["parallel"] == 2
    assert "224 MiB" in parallel()["reason"]
    assert parallel(memory_mib=2048)["parallel"] == 1
    assert parallel(memory_mib=1024)["parallel"] == 1  # never none
    assert parallel(memory_mib=65536)["parallel"] == modelfacts.context_budget()["cpu_max_parallel"]
    assert (
        parallel(memory_mib=0)["parallel"] == 1 and "not known" in parallel(memory_mib=0)["reason"]
    )
    assert parallel(asked="3")["parallel"] == 3


def _config(parallel_slots: int = 2, **model) -> dict:
    return {
        "model": {
            "served_name": "r1",
            "max_model_len": 8192,
            "source": "hub",
            "dir": "",
            "gguf_source": "auto",
            "gguf_repo": "u/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
            "gguf_hub_file": "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
            "gguf_sha256": "",
            "gguf_quant": "Q4_K_M",
            "gguf_file": "",
            "sampling": {"temperature": 0.6, "top_p": 0.95},
        }
        | model,
        "llamacpp": {
            "threads": 0,
            "extra_args": [],
            "parallel": {"parallel": parallel_slots, "reason": ""},
        },
        "hf": {"endpoint": ""},
    }


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_llama_cpp_flags_are_the_vllm_contract_in_its_words():
    args = stack.r1_stack_llamacpp_args(_config())
    assert _flag(args, "--alias") == "r1"
    assert _flag(args, "--ctx-size") == "16384"  # max_model_len for each of 2 slots
    assert _flag(args, "--parallel") == "2"
    assert _flag(args, "--reasoning-format") == "deepseek"
    assert _flag(args, "--chat-template-file") == "/stack/chat_template.jinja"
    assert {"--jinja", "--metrics", "--no-webui"} <= set(args)
    assert (_flag(args, "--temp"), _flag(args, "--top-p")) == ("0.6", "0.95")
    # The file the deploy fetched (and checked) on the host: the server downloads nothing.
    assert _flag(args, "--model") == "/models/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
    assert "--hf-repo" not in args and "--hf-file" not in args
    assert "--api-key" not in args  # LLAMA_API_KEY in the environment, from .env


def test_the_gguf_source_follows_what_the_inventory_gives():
    hub = stack.r1_stack_gguf(_config())
    assert (hub["source"], hub["path"]) == (
        "hub",
        "models/gguf/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
    )
    assert hub["url"] == (
        "https://huggingface.co/u/DeepSeek-R1-Distill-Qwen-1.5B-GGUF/resolve/main/"
        "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
    )
    # A mirror (HF_ENDPOINT) is where the file comes from.
    mirrored = stack.r1_stack_gguf(_config() | {"hf": {"endpoint": "https://hf.mirror/"}})
    assert mirrored["url"].startswith("https://hf.mirror/u/DeepSeek-R1-Distill-Qwen-1.5B-GGUF/")
    converted = stack.r1_stack_gguf(_config(source="local", dir="/srv/m"))
    assert converted["source"] == "convert" and converted["from"] == "/srv/m"
    assert converted["path"] == "models/gguf/r1-Q4_K_M.gguf"
    assert (
        _flag(stack.r1_stack_llamacpp_args(_config(source="local", dir="/srv/m")), "--model")
        == "/models/r1-Q4_K_M.gguf"
    )
    given = stack.r1_stack_gguf(_config(gguf_file="/srv/r1.gguf"))
    assert given["source"] == "file" and given["container_path"] == "/models/r1.gguf"
