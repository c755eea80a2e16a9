"""r1deploy.llamacpp: the pin, the CPU variant a build targets, the cached build (driven
with a stand-in cmake: the real one compiles for minutes, tests/e2e/test_llamacpp.py runs
it), llama-quantize's fallbacks, and llama-server's command from a rendered stack."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from r1deploy import modelserver
from r1deploy.llamacpp import build as buildmod
from r1deploy.llamacpp import convert, cpu, native, pins, source

X86_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2 avx512f\n"
ARM_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32\n"


def test_the_pin_names_the_image_of_the_same_build():
    pin = pins.load()
    assert pin.image == f"ghcr.io/ggml-org/llama.cpp:server-b{pin.build}"
    assert pin.build_info == f"b{pin.build}-{pin.commit[:7]}"
    assert len(pin.sha256) == 64 and pin.url.endswith(pin.file)


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo():
    assert {"avx2", "fma"} <= cpu.cpu_flags(X86_CPUINFO)
    assert "asimd" in cpu.cpu_flags(ARM_CPUINFO)
    assert cpu.cpu_flags("") == frozenset()


def test_the_variant_names_instruction_sets_not_the_building_cpu():
    v3 = cpu.variant_for("x86_64", cpu.cpu_flags(X86_CPUINFO))
    assert v3.name == "x86-64-v3"
    assert "-DGGML_AVX2=ON" in v3.cmake_options and "-DGGML_AVX512=OFF" in v3.cmake_options
    v2 = cpu.variant_for("x86_64", {"sse4_2", "avx"})
    assert v2.name == "x86-64-v2" and "-DGGML_AVX2=OFF" in v2.cmake_options
    assert "avx2" in v2.why
    assert cpu.variant_for("aarch64", cpu.cpu_flags(ARM_CPUINFO)).name == "armv8-a"
    with pytest.raises(cpu.UnsupportedCPU, match="x86-64 and 64-bit ARM"):
        cpu.variant_for("riscv64", set())


def test_cmake_builds_portably_offline_and_says_its_build():
    options = buildmod.cmake_options(pins.load(), cpu.variant_for("x86_64", {*cpu.X86_V3_FLAGS}))
    assert "-DGGML_NATIVE=OFF" in options
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in options  # ON downloads the web UI at configure
    assert f"-DLLAMA_BUILD_NUMBER={pins.load().build}" in options
    assert f"-DLLAMA_BUILD_COMMIT={pins.load().commit[:7]}" in options


# --- the build, with a stand-in cmake -------------------------------------------------------

FAKE_CMAKE = """#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
calls = os.environ["FAKE_CMAKE_CALLS"]
with open(calls, "a") as log:
    log.write(" ".join(args) + "\\n")
if args[0] == "--build":
    build = args[1]
    os.makedirs(os.path.join(build, "bin"), exist_ok=True)
    for i, target in enumerate(args[args.index("--target") + 1:]):
        print(f"[{50 * (i + 1):3d}%] Building CXX object {target}.o", flush=True)
        path = os.path.join(build, "bin", target)
        with open(path, "w") as f:
            f.write("#!/bin/sh\\necho version: 1\\n")
        os.chmod(path, 0o755)
"""


def _fake_archive(tmp_path: Path) -> tuple[Path, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (
            "CMakeLists.txt",
            "convert_hf_to_gguf.py",
            "LICENSE",
            "conversion/__init__.py",
            "gguf-py/gguf/__init__.py",
            "models/templates/x.jinja",
        ):
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(f"pkg-1/vendor/llama.cpp/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "pkg-1.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path, hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.fixture
def fake_toolchain(tmp_path, monkeypatch):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "cmake").write_text(FAKE_CMAKE)
    (bin_dir / "cmake").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CMAKE_CALLS", str(tmp_path / "calls.log"))
    monkeypatch.setenv("R1DEPLOY_CACHE", str(tmp_path / "cache"))
    archive, digest = _fake_archive(tmp_path)
    pin = replace(pins.load(), file=archive.name, sha256=digest, url="http://127.0.0.1:9/none")
    return archive, pin, tmp_path / "calls.log"


def test_a_build_is_made_once_and_reused_while_its_spec_holds(fake_toolchain, capsys):
    archive, pin, calls = fake_toolchain
    variant = cpu.variant_for("x86_64", {*cpu.X86_V3_FLAGS})
    first = buildmod.build(sdist=str(archive), pins=pin, variant=variant)
    assert not first.reused
    prefix = Path(first.prefix)
    assert prefix.name == f"llama.cpp-{pin.build_tag}-x86-64-v3"
    assert os.access(first.llama_server, os.X_OK) and os.access(first.llama_quantize, os.X_OK)
    assert (prefix / "convert" / "convert_hf_to_gguf.py").is_file()
    assert (prefix / "convert" / "gguf-py" / "gguf" / "__init__.py").is_file()
    assert "[llamacpp] building llama.cpp" in capsys.readouterr().err  # the progress line
    # The archive was kept in the cache: the next build needs neither it nor the network.
    assert (Path(os.environ["R1DEPLOY_CACHE"]) / "downloads" / archive.name).is_file()
    builds = calls.read_text().count("--build")
    again = buildmod.build(pins=pin, variant=variant)
    assert again.reused and calls.read_text().count("--build") == builds
    # Another variant (or version) is another build, beside the first.
    other = buildmod.build(pins=pin, variant=cpu.variant_for("x86_64", {"sse4_2"}))
    assert not other.reused and other.prefix != first.prefix
    # A prefix whose marker says other options is rebuilt, not trusted.
    marker = prefix / buildmod.MARKER
    marker.write_text(json.dumps({"cmake": ["-DGGML_NATIVE=ON"]}))
    assert not buildmod.build(pins=pin, variant=variant).reused


def test_another_prefix_is_copied_from_the_cache_not_compiled(fake_toolchain, tmp_path):
    # The native runtime builds into the stack's venvs: where the cache (CI fills it) holds
    # the same build, it is copied in seconds; without one, or with --no-copy, compiled.
    archive, pin, calls = fake_toolchain
    variant = cpu.variant_for("x86_64", {*cpu.X86_V3_FLAGS})
    stack_prefix = tmp_path / "stack" / "venvs" / f"llama.cpp-{pin.build_tag}-x86-64-v3"
    alone = buildmod.build(stack_prefix, sdist=str(archive), pins=pin, variant=variant)
    assert not alone.reused and not alone.copied_from  # no cache yet: compiled
    shutil.rmtree(stack_prefix)
    cached = buildmod.build(sdist=str(archive), pins=pin, variant=variant)
    builds = calls.read_text().count("--build")
    copied = buildmod.build(stack_prefix, pins=pin, variant=variant)
    assert copied.copied_from == cached.prefix and not copied.reused
    assert calls.read_text().count("--build") == builds
    assert buildmod.is_complete(stack_prefix, pin, variant)
    assert os.access(copied.llama_server, os.X_OK)
    assert buildmod.build(stack_prefix, pins=pin, variant=variant).reused
    # A cache of another spec is not copied.
    shutil.rmtree(stack_prefix)
    (Path(cached.prefix) / buildmod.MARKER).write_text("{}")
    rebuilt = buildmod.build(stack_prefix, sdist=str(archive), pins=pin, variant=variant)
    assert not rebuilt.copied_from and calls.read_text().count("--build") == builds + 1
    shutil.rmtree(stack_prefix)
    nocopy = buildmod.build(
        stack_prefix, sdist=str(archive), pins=pin, variant=variant, from_cache=False
    )
    assert not nocopy.copied_from


def test_an_archive_that_is_not_the_pinned_one_is_refused(fake_toolchain, tmp_path):
    archive, pin, _ = fake_toolchain
    wrong = replace(pin, sha256="0" * 64)
    with pytest.raises(source.SourceError, match="not the pinned"):
        buildmod.build(sdist=str(archive), pins=wrong, variant=cpu.variant_for("aarch64", set()))


def test_a_failed_compile_leaves_no_prefix_and_names_its_log(fake_toolchain, monkeypatch):
    archive, pin, _ = fake_toolchain
    monkeypatch.setattr(buildmod, "COMMON_OPTIONS", ())
    bad = replace(pin, targets=("llama-server", "missing-target"))

    def failing_run(argv, log, on_line=None, cwd=None):
        raise buildmod.BuildError(f"{argv[0]} {argv[1]} failed (exit 2)")

    monkeypatch.setattr(buildmod, "_run", failing_run)
    with pytest.raises(buildmod.BuildError, match=r"the log is .*\.build\.log"):
        buildmod.build(sdist=str(archive), pins=bad, variant=cpu.variant_for("aarch64", set()))
    assert not buildmod.default_prefix(bad, cpu.variant_for("aarch64", set())).exists()


# --- conversion ------------------------------------------------------------------------------

QUANTIZE_OUTPUT = """\
warning: token_embd.weight                    - ncols    128 not divisible by 256 (required \
for type    q4_K) -> falling back to    q5_0
warning: blk.0.attn_v.weight                  - ncols    128 not divisible by 256 (required \
for type    q6_K) -> falling back to    q8_0
[   1/  15] output.weight - [128, 576, 1, 1], type = f16, converting to q8_0
"""


def test_quantize_fallbacks_are_read_from_its_output():
    assert convert.fallbacks(QUANTIZE_OUTPUT) == [
        {
            "tensor": "token_embd.weight",
            "ncols": 128,
            "block": 256,
            "wanted": "q4_K",
            "got": "q5_0",
        },
        {
            "tensor": "blk.0.attn_v.weight",
            "ncols": 128,
            "block": 256,
            "wanted": "q6_K",
            "got": "q8_0",
        },
    ]


def test_the_converter_knows_the_test_models_tokenizer_by_its_split_pattern():
    from r1deploy.llamacpp import convert_runner
    from r1deploy.testmodel.build import PRETOKENIZE_PATTERN

    assert convert_runner.KNOWN_SPLIT_PATTERNS[PRETOKENIZE_PATTERN] == "qwen2"


# --- the server's command from a rendered stack -----------------------------------------

SETTINGS = {
    "llamacpp": {
        "args": [
            "--hf-repo",
            "u/R-GGUF",
            "--hf-file",
            "R-Q4_K_M.gguf",
            "--alias",
            "r1",
            "--ctx-size",
            "16384",
            "--parallel",
            "2",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--jinja",
            "--chat-template-file",
            "/stack/chat_template.jinja",
            "--metrics",
        ]
    }
}


def test_the_server_command_is_the_rendered_one_on_the_hosts_paths_and_port():
    argv = native.server_argv(
        SETTINGS,
        llama_server="/p/bin/llama-server",
        model_path="/srv/r1.gguf",
        stack_dir="/opt/r1deploy/",
        host="127.0.0.1",
        port=18005,
    )
    assert argv[:3] == ["/p/bin/llama-server", "--model", "/srv/r1.gguf"]
    assert "--hf-repo" not in argv and "--hf-file" not in argv
    assert argv[argv.index("--chat-template-file") + 1] == "/opt/r1deploy/chat_template.jinja"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "18005" and argv.count("--port") == 1
    assert argv[argv.index("--ctx-size") + 1] == "16384"
    assert native.server_env({"VLLM_API_KEY": "k"}) == {"LLAMA_API_KEY": "k"}
    with pytest.raises(ValueError, match="engine"):
        native.server_argv(
            {"vllm": {}}, llama_server="x", model_path="m", stack_dir="/s", host="h", port=1
        )


# --- what a model server says ----------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("a", "b")]


def test_a_named_tool_choice_is_worded_for_each_server():
    assert modelserver.named_tool_choice("vllm", TOOLS, "b") == {
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "b"}},
    }
    assert modelserver.named_tool_choice("llamacpp", TOOLS, "b") == {
        "tools": [TOOLS[1]],
        "tool_choice": "required",
    }


def test_max_model_len_and_the_tokenizer_in_each_servers_words():
    assert modelserver.max_model_len_of({"max_model_len": 4096}) == 4096
    assert modelserver.max_model_len_of({"owned_by": "llamacpp", "meta": {"n_ctx": 8192}}) == 8192
    assert modelserver.kind_of({"owned_by": "llamacpp"}) == "llamacpp"
    assert modelserver.tokenize_request("llamacpp", "m", "hi") == {
        "content": "hi",
        "add_special": False,
    }
    assert modelserver.tokenize_request("vllm", "m", "hi")["prompt"] == "hi"
    assert modelserver.detokenized_text("llamacpp", {"content": "x"}) == "x"
    assert modelserver.metric_families(
        "# HELP llamacpp:x y\n# TYPE llamacpp:x counter\nllamacpp:x 1\n"
    ) == {"llamacpp:x"}
