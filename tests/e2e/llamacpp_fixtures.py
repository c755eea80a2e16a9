"""Session fixtures of the llama.cpp stack (the cpu profile's engine), beside the vLLM one:
llama-server built from the pinned source (cached, r1deploy.llamacpp.build), the scripted
test model converted and quantized on the host as the role's convert source does, a stack
rendered with the real role for the cpu profile, and its services started as the native
runtime starts them: llama-server with settings.json's llamacpp.args
(r1deploy.llamacpp.native), the gateway and Open WebUI from roles/r1_native's own filter.

Loopback ports R1DEPLOY_E2E_PORT_BASE + 10..12, so both stacks can run in one session. Nothing
starts unless a test asks for ``llamacpp_stack`` (or a piece of it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1deploy.llamacpp import native, pins
from r1deploy.llamacpp.build import build as build_llamacpp
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD, PORT_BASE, TIMINGS, _sources_digest, _start, reconcile

# Past the vLLM stack's PORT_BASE + 0..9 (its front door has + 7 and + 8).
LLAMA_PORT, LLAMA_WEBUI_PORT, LLAMA_GATEWAY_PORT = PORT_BASE + 10, PORT_BASE + 11, PORT_BASE + 12
LLAMA_READY_S, WEBUI_READY_S = 120, 300
# What the role renders for the test model on a host of this size (fixed, so the flags do
# not depend on the machine the tier runs on): the parallel slots come from it.
HOST_MEMORY_MIB = 8192


@pytest.fixture(scope="session")
def llamacpp_build():
    """llama-server and llama-quantize of the pinned build: built once per machine and
    version (`make test-e2e` builds the cache first, with its progress line)."""
    built = build_llamacpp()
    TIMINGS["llamacpp_build_s"] = built.seconds
    TIMINGS["llamacpp_build_reused"] = built.reused
    return built


@pytest.fixture(scope="session")
def llamacpp_stack_dir(tmp_path_factory, stack_tools_file, scripted_model) -> Path:
    """The cpu profile rendered by the role, llama.cpp chosen, the GGUF made on the host
    from the scripted model's safetensors (gguf source convert: model_source local)."""
    return stacklib.render_test_stack(
        tmp_path_factory.mktemp("llamacpp-stack"),
        vllm_port=LLAMA_PORT,
        webui_port=LLAMA_WEBUI_PORT,
        gateway_port=LLAMA_GATEWAY_PORT,
        tools_file=stack_tools_file,
        r1_stack_profile="cpu",
        r1_stack_cpu_engine="llama_cpp",
        r1_stack_model_source="local",
        r1_stack_model_dir=str(scripted_model),
        r1_stack_host_memory_mib=HOST_MEMORY_MIB,
    )


def convert_test_model(model_dir: Path, quant: str, built) -> Path:
    """The scripted model as GGUF (reused while the builder, its facts and the pin are
    unchanged), with `r1deploy llamacpp convert` as the role runs it."""
    out = BUILD / "models" / f"scripted-{quant}.gguf"
    stamp = out.with_name(out.name + ".built-from")
    digest = f"{_sources_digest()} {pins.load().build_info} {quant}"
    if not (out.is_file() and stamp.is_file() and stamp.read_text() == digest):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "r1deploy.cli",
                "llamacpp",
                "convert",
                str(model_dir),
                str(out),
                "--quant",
                quant,
                "--prefix",
                built.prefix,
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        (BUILD / "models" / f"scripted-{quant}.convert.json").write_text(done.stdout)
        stamp.write_text(digest)
    return out


@pytest.fixture(scope="session")
def llamacpp_gguf(llamacpp_stack_dir, scripted_model, llamacpp_build) -> Path:
    """The GGUF where the rendered stack expects it (settings.json llamacpp.gguf.path)."""
    gguf = stacklib.read_settings(llamacpp_stack_dir)["llamacpp"]["gguf"]
    made = convert_test_model(scripted_model, gguf["quant"], llamacpp_build)
    path = llamacpp_stack_dir / gguf["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.symlink_to(made)
    return path


@pytest.fixture(scope="session")
def llamacpp_services(
    llamacpp_stack_dir, scripted_model, stack_upstream, llamacpp_build, llamacpp_gguf
) -> dict:
    """Every service as roles/r1_native runs them: the model service is llama-server with
    the rendered flags (the role's filter, as r1deploy.llamacpp.native translates them), on
    the model API's published port."""
    services = stacklib.native_services(
        llamacpp_stack_dir,
        scripted_model,
        {"tools-gateway": {"R1_WEATHER_BASE_URL": f"{stack_upstream.url}/weather"}},
        {"llama_server": str(llamacpp_build.llama_server), "gguf_path": str(llamacpp_gguf)},
    )
    services["llamacpp"] = services.pop("vllm")
    settings = stacklib.read_settings(llamacpp_stack_dir)
    model_api = services["llamacpp"]
    # The package's translation (what the e2e tier started before the role did) agrees.
    assert model_api["argv"] == native.server_argv(
        settings,
        llama_server=str(llamacpp_build.llama_server),
        model_path=str(llamacpp_gguf),
        stack_dir=str(llamacpp_stack_dir.resolve()),
        host=model_api["listen"],
        port=model_api["port"],
    )
    (BUILD / "llamacpp-argv.json").write_text(json.dumps(services["llamacpp"]["argv"]))
    return services


def _server(name: str, service: dict) -> stacklib.Server:
    return stacklib.Server(
        f"llamacpp-stack-{name}",
        service["argv"],
        service["env"],
        service["health_url"],
        BUILD / "logs" / f"llamacpp-stack-{name}.log",
        Path(service["workdir"]),
    )


@pytest.fixture(scope="session")
def llamacpp_server(llamacpp_services):
    server = _start(_server("llamacpp", llamacpp_services["llamacpp"]), LLAMA_READY_S)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llamacpp_gateway(llamacpp_services):
    server = _start(_server("tools-gateway", llamacpp_services["tools-gateway"]), 60)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llamacpp_webui(llamacpp_services, llamacpp_server, llamacpp_gateway):
    server = _start(_server("open-webui", llamacpp_services["open-webui"]), WEBUI_READY_S)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llamacpp_stack(llamacpp_stack_dir, llamacpp_server, llamacpp_gateway, llamacpp_webui):
    """The llama.cpp stack up and reconciled, as a deploy leaves it: its stack directory."""
    TIMINGS["llamacpp_first_reconcile_changed"] = reconcile(llamacpp_stack_dir)["changed"]
    return llamacpp_stack_dir
