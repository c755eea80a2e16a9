"""The cpu profile's llama.cpp for real: llama-server built from the pinned source (cached),
the scripted test model converted to GGUF and quantized on the host, started with the flags
the role renders, behind the real gateway and Open WebUI; `r1deploy smoke` and
`r1deploy bench` against it (the browser journeys run against it too: test_journeys.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from r1deploy.llamacpp import pins
from r1deploy.llamacpp.build import build as build_llamacpp
from r1deploy.testmodel import script
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD
from tests.e2e.smokerun import run_smoke
from tests.e2e.test_smoke import EXPECTED_PASS


def test_the_build_is_cached_by_version_and_reports_the_pinned_build(llamacpp_build):
    started = time.monotonic()
    again = build_llamacpp()
    assert again.reused and again.prefix == llamacpp_build.prefix
    assert time.monotonic() - started < 5  # a cache hit reads a marker, builds nothing
    assert f"llama.cpp-{pins.load().build_tag}-" in again.prefix
    version = subprocess.run(
        [again.llama_server, "--version"], capture_output=True, text=True, timeout=30
    )
    pin = pins.load()
    assert f"(build {pin.build}, commit {pin.commit[:7]})" in version.stdout + version.stderr


def test_q4_k_m_of_the_test_model_falls_back_where_rows_are_too_short(llamacpp_gguf):
    """The test model's hidden size is 128: k-quants need rows of 256, so llama-quantize
    gives those tensors q5_0 (for q4_K) and q8_0 (for q6_K); the 256-wide ffn_down keeps
    q6_K. The scripted text survives it (the smoke below asserts it exactly)."""
    report = json.loads((BUILD / "models" / "scripted-Q4_K_M.convert.json").read_text())
    got = {f["tensor"]: (f["wanted"], f["got"]) for f in report["fallbacks"]}
    assert got["token_embd.weight"] == ("q4_K", "q5_0")
    assert got["blk.0.attn_q.weight"] == ("q4_K", "q5_0")
    assert got["blk.0.attn_v.weight"] == ("q6_K", "q8_0")
    assert "blk.0.ffn_down.weight" not in got
    assert llamacpp_gguf.resolve().stat().st_size == report["bytes"]


def test_llama_server_runs_the_flags_the_role_rendered(llamacpp_stack, llamacpp_services):
    settings = stacklib.read_settings(llamacpp_stack)
    assert settings["engine"] == "llama_cpp"
    argv = llamacpp_services["llamacpp"]["argv"]
    rendered = settings["llamacpp"]["args"]
    for flag in ("--alias", "--ctx-size", "--parallel", "--reasoning-format", "--temp", "--top-p"):
        assert argv[argv.index(flag) + 1] == rendered[rendered.index(flag) + 1], flag
    assert {"--jinja", "--metrics", "--no-webui"} <= set(argv)
    assert argv[argv.index("--chat-template-file") + 1] == str(
        llamacpp_stack.resolve() / "chat_template.jinja"
    )
    key = stacklib.read_env(llamacpp_stack)["VLLM_API_KEY"]
    assert key not in argv  # the key goes through the environment, not the command line
    props = requests.get(
        f"{settings['vllm']['url']}/props", timeout=10, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert props["build_info"] == settings["llamacpp"]["build_info"] == pins.load().build_info
    assert props["total_slots"] == settings["llamacpp"]["parallel"]


def test_smoke_passes_every_check_against_llama_cpp(llamacpp_stack):
    run = run_smoke(llamacpp_stack, "--junit", str(BUILD / "smoke-llamacpp-junit.xml"))
    assert run.exit_code == 0, run.table
    # This stack starts no front door (tests/e2e/llamacpp_fixtures.py): its checks skip.
    door = [name for name in EXPECTED_PASS if name.startswith("frontdoor.")]
    expected = [name for name in EXPECTED_PASS if name not in door] + ["vllm.metrics"]
    statuses = run.statuses()
    assert {name: statuses[name] for name in expected} == dict.fromkeys(expected, "pass"), run.table
    assert {name: statuses[name] for name in door} == dict.fromkeys(door, "skip"), run.table


def test_smoke_sees_the_scripted_model_say_its_script_through_llama_cpp(llamacpp_stack):
    run = run_smoke(llamacpp_stack, "--only", "vllm.", "--only", "webui.")
    models = run.check("vllm.models")["data"]
    assert models["server"] == "llamacpp" and models["max_model_len"] == 8192
    assert models["build_info"] == pins.load().build_info
    chat = run.check("vllm.chat")["data"]
    assert chat["content"] == script.ANSWER
    # llama.cpp keeps the newline of the prompt's "<think>\n" in front of the reasoning.
    assert chat["reasoning"] == "\n" + script.REASONING
    stream = run.check("vllm.stream")["data"]
    assert stream["text"] == "\n" + script.REASONING + script.ANSWER
    assert run.check("vllm.tool_call")["data"] == {
        "tool": script.TOOL_NAME,
        "arguments": {"city": script.TOOL_CITY},
    }
    assert any(f.startswith("llamacpp:") for f in run.check("vllm.metrics")["data"]["families"])
    assert run.check("webui.chat")["data"]["content"] == script.ANSWER
    ui = run.check("webui.ui_chat")["data"]
    assert ui["content"] == script.ANSWER
    assert (
        0
        < ui["usage"]["prompt_tokens"]
        <= stacklib.read_settings(llamacpp_stack)["model"]["prompt_budget"]
    )


def test_the_maths_reply_survives_quantization_exactly(llamacpp_stack):
    settings = stacklib.read_settings(llamacpp_stack)
    key = stacklib.read_env(llamacpp_stack)["VLLM_API_KEY"]
    answer = requests.post(
        f"{settings['vllm']['url']}/v1/chat/completions",
        timeout=60,
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": settings["model"]["served_name"],
            "max_tokens": 400,
            "messages": [{"role": "user", "content": script.MATHS_PROMPT}],
        },
    ).json()
    message = answer["choices"][0]["message"]
    assert message["content"] == script.MATHS.answer_text
    assert message["reasoning_content"] == "\n" + script.MATHS.reasoning_text


def test_bench_measures_llama_cpp_with_exact_prompt_lengths(llamacpp_stack, tmp_path):
    """`r1deploy bench` asks llama.cpp's /tokenize in its own words (vLLM's body gets an
    empty token list from it): prompts of exactly --input-len tokens."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1deploy.cli",
            "bench",
            "run",
            "--stack-dir",
            str(llamacpp_stack),
            "--input-len",
            "32",
            "--output-len",
            "16",
            "--num-prompts",
            "4",
            "--concurrency",
            "2",
            "--output",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(out.read_text())
    assert result["settings"]["prompt_length_method"] == "exact, server /tokenize"
    assert result["server"]["version"] == pins.load().build_info
    level = result["levels"][0]
    assert level["metrics"]["completed"] == 4
