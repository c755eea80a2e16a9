"""`r1deploy doctor`: each check fires on a recorded fault (with its cause and fix) and passes
on a healthy input; the CLI's exit codes, JSON and --only. Inputs are recorded: a temporary
stack directory, log text, stand-in HTTP servers (tests/support/recorded_http.py), disk
stats and certificates given to the context's gatherers."""

from __future__ import annotations

import datetime
import json
import os
import socket
from email.utils import format_datetime
from pathlib import Path

import pytest

from r1deploy.cli import main
from r1deploy.doctor.checks import DOCTOR_CHECKS
from r1deploy.doctor.core import FAIL, GIB, PASS, SKIP, WARN, DoctorContext
from r1deploy.doctor.gateway import gateway_upstreams
from r1deploy.doctor.host import disk_free, frontdoor_certificate
from r1deploy.doctor.secrets import secrets_controller_match
from r1deploy.doctor.services import clock_skew, services_reachable
from r1deploy.doctor.tools import tools_strict
from r1deploy.doctor.vllm import vllm_context_pressure, vllm_oom, vllm_tool_flags
from r1deploy.doctor.webui import (
    webui_builtin_tools,
    webui_env_drift,
    webui_function_calling,
    webui_sampling,
    webui_signup,
)
from r1deploy.stackdir import StackDir
from tests.support.recorded_host import RecordedHost, Reply
from tests.support.recorded_http import Answer, RecordedHTTP

REPO = Path(__file__).resolve().parents[2]
# The template the role ships, and the model's own (which drops a request's tools).
TOOLS_TEMPLATE = REPO / "compose" / "chat_template_r1_tools.jinja"
MODEL_TEMPLATE = REPO / "r1deploy" / "testmodel" / "r1_distill_chat_template.jinja"

MODEL = "deepseek-r1-distill-qwen-1.5b"
GOOD_ARGS = [
    "--served-model-name",
    MODEL,
    "--max-model-len",
    "8192",
    "--chat-template",
    "/stack/chat_template.jinja",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "hermes",
    "--reasoning-parser",
    "deepseek_r1",
]
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again when it goes


@pytest.fixture
def servers():
    started: list[RecordedHTTP] = []

    def start(routes: dict | None = None) -> RecordedHTTP:
        started.append(
            RecordedHTTP(
                routes if routes is not None else {"GET /health": Answer(200, {"status": True})}
            )
        )
        return started[-1]

    yield start
    for server in started:
        server.close()


def make_stack(
    root: Path,
    *,
    runtime: str = "native",
    vllm_url: str | None = None,
    webui_url: str | None = None,
    gateway_url: str | None = None,
    args: list[str] | None = None,
    max_model_len: int = 8192,
    builtin_tools: bool = False,
    front_door: dict | None = None,
    model_path: str = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    logs: dict[str, str] | None = None,
    template: bool = True,
) -> Path:
    """A rendered stack directory as docs/stack-dir.md describes it, with what a test needs."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "schema_version": 1,
        "profile": "gpu",
        "runtime": runtime,
        "model": {
            "served_name": MODEL,
            "max_model_len": max_model_len,
            "path": model_path,
            "id": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "prompt_budget": 1804,
        },
        "vllm": {
            "server": "vllm",
            "service": "vllm",
            "url": vllm_url or _closed_url(),
            "args": GOOD_ARGS if args is None else args,
            "gpu_memory_utilization": 0.9,
        },
        "webui": {
            "service": "open-webui",
            "url": webui_url or _closed_url(),
            "admin_email": "admin@r1deploy.local",
            "model": {"capabilities": {"builtin_tools": builtin_tools}},
        },
        "gateway": {
            "enabled": gateway_url is not None,
            "service": "tools-gateway",
            "url": gateway_url or "http://127.0.0.1:9",
        },
        "front_door": front_door or {"enabled": False},
        "chat_template": "chat_template.jinja",
    }
    (root / "settings.json").write_text(json.dumps(settings))
    (root / ".env").write_text(
        "WEBUI_ADMIN_EMAIL='admin@r1deploy.local'\nWEBUI_ADMIN_PASSWORD='right-password-123'\n"
    )
    if template:
        (root / "chat_template.jinja").write_text(TOOLS_TEMPLATE.read_text())
    for service, text in (logs or {}).items():
        (root / "native" / "logs").mkdir(parents=True, exist_ok=True)
        (root / "native" / "logs" / f"{service}.log").write_text(text)
    return root


def ctx_for(root: Path, **gatherers) -> DoctorContext:
    return DoctorContext(StackDir.load(root), timeout_s=2.0, **gatherers)


def healthy_stack(tmp_path, servers, **extra) -> Path:
    return make_stack(
        tmp_path / "stack",
        vllm_url=servers().url,
        webui_url=servers().url,
        gateway_url=servers().url,
        **extra,
    )


# ---------------------------------------------------------------- services.reachable


def test_services_reachable_passes_when_each_service_answers(tmp_path, servers):
    verdict = services_reachable(ctx_for(healthy_stack(tmp_path, servers)))
    assert verdict.status == PASS
    assert verdict.seen == "3 services answer: vllm 200, open-webui 200, tools-gateway 200"


RECORDED_LOGS = [
    (
        "port-in-use",
        "ERROR: [Errno 98] error while attempting to bind on address "
        "('127.0.0.1', 8000): Address already in use",
        "r1_stack_vllm_port",
    ),
    (
        "cuda-oom",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "r1_stack_max_num_seqs",
    ),
    (
        "kv-cache",
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization`",
        "r1_stack_max_model_len",
    ),
    ("no-space", "OSError: [Errno 28] No space left on device", "docker system prune"),
    (
        "hub-auth",
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
        "https://huggingface.co/api/models/x",
        "r1_stack_hf_token",
    ),
    (
        "model-missing",
        "OSError: /models/r1 does not appear to have a file named config.json",
        "r1_stack_model_dir",
    ),
    # vLLM 0.32 on a model directory that does not exist takes the path for a hub id
    # (recorded by tests/e2e/test_doctor.py's real fault).
    (
        "model-missing",
        "huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' "
        "or 'namespace/repo_name': '/opt/r1deploy/models/DeepSeek-R1-Distill-Qwen-1.5B'. Use "
        "`repo_type` argument if needed.",
        "r1_stack_model_dir",
    ),
]


@pytest.mark.parametrize(
    "cause_id, line, fix_names", RECORDED_LOGS, ids=[c[0] for c in RECORDED_LOGS]
)
def test_a_service_down_is_named_with_the_cause_its_log_shows(
    tmp_path, servers, cause_id, line, fix_names
):
    log = f"INFO starting vLLM\n{line}\nINFO shutting down\n"
    root = make_stack(tmp_path / "stack", webui_url=servers().url, logs={"vllm": log})
    verdict = services_reachable(ctx_for(root))
    assert verdict.status == FAIL
    assert "vllm DOWN" in verdict.seen and "open-webui 200" in verdict.seen
    assert verdict.data["services"]["vllm"]["causes"] == [cause_id]
    assert line.strip()[:40] in verdict.cause
    assert fix_names in verdict.fix


def test_a_service_down_says_since_when_its_log_is_quiet(tmp_path, servers):
    root = make_stack(tmp_path / "stack", webui_url=servers().url, logs={"vllm": "Killed\n"})
    now = datetime.datetime(2026, 12, 2, 9, 51, 7, tzinfo=datetime.UTC)
    died = (now - datetime.timedelta(minutes=10)).timestamp()
    os.utime(root / "native" / "logs" / "vllm.log", (died, died))
    verdict = services_reachable(ctx_for(root, now=lambda: now))
    assert verdict.status == FAIL
    assert "(its log last written 10 min ago, 2026-12-02 09:41:07 UTC)" in verdict.seen


def test_a_service_down_with_an_unknown_log_shows_its_last_lines(tmp_path, servers):
    log = "".join(f"line {n}\n" for n in range(20)) + "Segmentation fault\n"
    root = make_stack(tmp_path / "stack", webui_url=servers().url, logs={"vllm": log})
    verdict = services_reachable(ctx_for(root))
    assert verdict.status == FAIL
    assert "no cause recognised" in verdict.cause and "Segmentation fault" in verdict.cause
    assert "line 16" in verdict.cause and "line 15" not in verdict.cause
    assert "native/r1ctl start vllm" in verdict.fix and "make logs SERVICE=vllm" in verdict.fix


def test_a_service_down_on_docker_says_how_to_start_it(tmp_path, servers):
    root = make_stack(tmp_path / "stack", runtime="docker", vllm_url=servers().url)
    log = "ERROR: [Errno 98] error while attempting to bind on address: address already in use\n"
    host = RecordedHost(commands={"docker compose": Reply(0, log)})
    verdict = services_reachable(ctx_for(root, host=host))
    assert verdict.status == FAIL and "open-webui DOWN" in verdict.seen
    assert "r1_stack_webui_port" in verdict.fix
    assert "address already in use" in verdict.cause  # read from its container's log


def test_an_unhealthy_answer_counts_as_down_and_the_front_door_is_checked(tmp_path, servers):
    sick = servers({"GET /health": Answer(503, {"detail": "engine dead"})})
    door = servers({"GET /": Answer(200, "<html>")})
    root = make_stack(
        tmp_path / "stack",
        vllm_url=sick.url,
        webui_url=servers().url,
        front_door={"enabled": True, "local_url": door.url},
    )
    verdict = services_reachable(ctx_for(root))
    assert verdict.status == FAIL
    assert "vllm DOWN" in verdict.seen and "HTTP 503" in verdict.seen
    assert "front-door 200" in verdict.seen


# ---------------------------------------------------------------- vllm.oom

KV_LOG = (
    "INFO Loading weights took 3.2 seconds\nERROR ValueError: No available memory for "
    "the cache blocks. Try increasing `gpu_memory_utilization` when initializing the "
    "engine.\n"
)


def test_vllm_oom_fires_with_the_variables_and_the_cpu_profile(tmp_path):
    root = make_stack(tmp_path / "stack", max_model_len=32768, logs={"vllm": KV_LOG})
    verdict = vllm_oom(ctx_for(root))
    assert verdict.status == FAIL
    assert "No available memory for the cache blocks" in verdict.seen
    assert "KV cache does not fit" in verdict.cause
    for name in (
        "r1_stack_max_model_len (now 32768)",
        "r1_stack_gpu_memory_utilization (now 0.9)",
        "r1_stack_profile: cpu",
    ):
        assert name in verdict.fix


def test_vllm_oom_names_max_num_seqs_for_a_cuda_oom_and_warns_while_it_answers(tmp_path, servers):
    log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB\n"
    root = make_stack(tmp_path / "stack", vllm_url=servers().url, logs={"vllm": log})
    verdict = vllm_oom(ctx_for(root))
    assert verdict.status == WARN and "the server answers now" in verdict.cause
    assert "r1_stack_max_num_seqs" in verdict.fix and "GGUF" in verdict.fix


def test_vllm_oom_gives_the_numbers_that_must_fit(tmp_path):
    """From model_facts.json: 3,554,176,000 bytes of weights, 28,672 bytes of KV a token;
    8192 tokens are 0.22 GiB, so (3.31 + 0.22) / 0.9 = 3.9 GiB at the least."""
    log = "ValueError: No available memory for the cache blocks.\n"
    root = make_stack(tmp_path / "stack", logs={"vllm": log}, max_model_len=8192)
    verdict = vllm_oom(ctx_for(root))
    assert verdict.status == FAIL
    assert (
        "weights 3.3 GiB; KV cache 28,672 bytes a token, 0.22 GiB for one sequence of "
        "max_model_len 8192; at gpu_memory_utilization 0.9 that needs a GPU of at least 3.9 GiB"
    ) in verdict.cause


def test_vllm_oom_passes_on_a_clean_log_and_skips_without_one(tmp_path):
    root = make_stack(tmp_path / "stack", logs={"vllm": "INFO Application startup complete.\n"})
    assert vllm_oom(ctx_for(root)).status == PASS
    docker = make_stack(tmp_path / "docker", runtime="docker")
    verdict = vllm_oom(ctx_for(docker, host=RecordedHost()))  # no docker here
    assert verdict.status == SKIP and "no readable log: docker compose" in verdict.seen


def test_vllm_oom_reads_the_docker_runtimes_container_log(tmp_path):
    """The docker runtime's log is `docker compose logs` of the model server's service."""
    log = "INFO loading\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n"
    docker = make_stack(tmp_path / "docker", runtime="docker")
    host = RecordedHost(commands={"docker compose": Reply(0, log)})
    verdict = vllm_oom(ctx_for(docker, host=host))
    assert verdict.status == FAIL and "CUDA out of memory" in verdict.seen
    assert f"docker compose --project-directory {docker} logs vllm" in verdict.seen
    assert host.ran == [
        ("docker", "compose", "--project-directory", str(docker), "logs", "--no-color")
        + ("--no-log-prefix", "--tail", "2000", "vllm")
    ]


def test_vllm_oom_reads_saved_container_logs_with_logs_dir(tmp_path):
    """make doctor runs the docker runtime's doctor in a container: the logs saved before."""
    docker = make_stack(tmp_path / "docker", runtime="docker")
    saved = tmp_path / "logs"
    saved.mkdir()
    (saved / "vllm.log").write_text("ValueError: No available memory for the cache blocks.\n")
    host = RecordedHost()
    verdict = vllm_oom(ctx_for(docker, host=host, logs_dir=saved))
    assert verdict.status == FAIL and f"{saved / 'vllm.log'} (docker compose" in verdict.seen
    assert host.ran == []


# ---------------------------------------------------------------- vllm.tool_flags


@pytest.mark.parametrize(
    "args, missing",
    [
        (
            [a for a in GOOD_ARGS if a != "--enable-auto-tool-choice"],
            "--enable-auto-tool-choice is not given",
        ),
        (GOOD_ARGS[:-4] + ["--tool-call-parser"], "--tool-call-parser has no value"),
        (
            [a for a in GOOD_ARGS if a not in ("--chat-template", "/stack/chat_template.jinja")],
            "--chat-template is not given",
        ),
    ],
    ids=["auto-tool-choice", "parser", "template"],
)
def test_tool_flags_fail_naming_what_is_missing(tmp_path, args, missing):
    verdict = vllm_tool_flags(ctx_for(make_stack(tmp_path / "stack", args=args)))
    assert verdict.status == FAIL and missing in verdict.seen
    assert "tool calls never trigger" in verdict.cause
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in verdict.fix


def test_tool_flags_fail_when_the_chat_template_file_is_missing(tmp_path):
    root = make_stack(tmp_path / "stack", template=False)
    verdict = vllm_tool_flags(ctx_for(root))
    assert verdict.status == FAIL
    assert f"names {root / 'chat_template.jinja'}, which does not exist" in verdict.seen


@pytest.mark.parametrize(
    "template, seen",
    [
        (MODEL_TEMPLATE.read_text(), "drops a request's tools"),
        ("{% for m in messages %}{{ m.content }}", "does not render (TemplateSyntaxError"),
        ("{{ raise_exception('no tools here') }}", "does not render (TemplateError: no tools"),
    ],
    ids=["the model's own template", "broken", "raises"],
)
def test_tool_flags_fail_when_the_chat_template_does_not_show_tools(tmp_path, template, seen):
    root = make_stack(tmp_path / "stack")
    (root / "chat_template.jinja").write_text(template)
    verdict = vllm_tool_flags(ctx_for(root))
    assert verdict.status == FAIL and seen in verdict.seen, verdict.seen
    assert "chat_template_r1_tools.jinja" in verdict.fix


def test_tool_flags_pass_with_both_argument_forms(tmp_path):
    root = make_stack(tmp_path / "stack")
    verdict = vllm_tool_flags(ctx_for(root))
    assert verdict.status == PASS and "--tool-call-parser hermes" in verdict.seen
    joined = [
        "--enable-auto-tool-choice",
        "--tool-call-parser=hermes",
        "--chat-template=/stack/chat_template.jinja",
    ]
    assert vllm_tool_flags(ctx_for(make_stack(tmp_path / "s2", args=joined))).status == PASS


# ---------------------------------------------------------------- vllm.context_pressure

BOUNDS_8192 = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]  # vLLM's 1-2-5 buckets


def vllm_metrics(prompts: list[int], answers: list[int], length: int = 0) -> str:
    """vLLM's /metrics as text: the two token histograms of these requests, and the
    finished requests by reason."""
    lines = []
    for name, values in (
        ("vllm:request_prompt_tokens", prompts),
        ("vllm:request_generation_tokens", answers),
    ):
        labels = f'engine="0",model_name="{MODEL}"'
        lines.append(f"# HELP {name} Number of tokens.\n# TYPE {name} histogram")
        for bound in [*BOUNDS_8192, "+Inf"]:
            count = sum(v <= float(bound) for v in values)
            lines.append(f'{name}_bucket{{{labels},le="{float(bound)}"}} {count}.0')
        lines.append(f"{name}_count{{{labels}}} {len(values)}.0")
        lines.append(f"{name}_sum{{{labels}}} {sum(values)}.0")
    name = "vllm:request_success_total"
    lines.append(f"# HELP {name} Finished requests.\n# TYPE {name} counter")
    for reason, count in (("stop", len(prompts) - length), ("length", length), ("abort", 0)):
        lines.append(f'{name}{{finished_reason="{reason}",model_name="{MODEL}"}} {count}.0')
    return "\n".join(lines) + "\n"


def metrics_stack(tmp_path, servers, text: str) -> Path:
    vllm = servers({"GET /health": Answer(200, {}), "GET /metrics": Answer(200, text)})
    return make_stack(tmp_path / "stack", vllm_url=vllm.url, max_model_len=8192)


def test_context_pressure_warns_on_long_chats_and_cut_answers(tmp_path, servers):
    text = vllm_metrics(prompts=[300, 900, 6100], answers=[800, 1500, 2000], length=1)
    verdict = vllm_context_pressure(ctx_for(metrics_stack(tmp_path, servers, text)))
    assert verdict.status == WARN
    assert verdict.seen == (
        "1 with a prompt over 5000 tokens; 1 stopped at their token limit (finished_reason "
        "length) (of 3 requests since the model server started, max_model_len 8192)"
    )
    assert "answers stop half-way, repeat themselves" in verdict.cause
    assert "raise r1_stack_max_model_len (now 8192" in verdict.fix
    assert "shorten it" in verdict.fix


def test_context_pressure_counts_long_generations(tmp_path, servers):
    text = vllm_metrics(prompts=[300, 400], answers=[7000, 100])
    verdict = vllm_context_pressure(ctx_for(metrics_stack(tmp_path, servers, text)))
    assert verdict.status == WARN and verdict.data["long_answers"] == 1
    assert verdict.seen.startswith("1 that generated over 5000 tokens")


def test_context_pressure_passes_on_short_chats_and_skips_without_vllm_metrics(tmp_path, servers):
    text = vllm_metrics(prompts=[300, 900, 1200], answers=[800, 1500, 3000])
    verdict = vllm_context_pressure(ctx_for(metrics_stack(tmp_path, servers, text)))
    assert verdict.status == PASS and "of 3 requests" in verdict.seen
    llamacpp = "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total 5\n"
    verdict = vllm_context_pressure(ctx_for(metrics_stack(tmp_path / "cpu", servers, llamacpp)))
    assert verdict.status == SKIP and "not vLLM" in verdict.seen
    assert vllm_context_pressure(ctx_for(make_stack(tmp_path / "down"))).status == SKIP


# ---------------------------------------------------------------- webui.builtin_tools


WEBUI_ENV = {
    "OPENAI_API_BASE_URL": "http://127.0.0.1:8000/v1",
    "OPENAI_API_KEY": "vllm-key",
    "ENABLE_SIGNUP": "false",
    "DEFAULT_MODELS": MODEL,
    "TOOL_SERVER_CONNECTIONS": json.dumps([{"url": "http://127.0.0.1:8090", "key": "gw"}]),
}


def write_webui_env(root: Path, env: dict | None = None) -> None:
    """native/env/open-webui.env: Open WebUI's environment on the native runtime (what
    reconcile takes as the desired state)."""
    (root / "native" / "env").mkdir(parents=True, exist_ok=True)
    lines = [f"{k}='{v}'" for k, v in (env or WEBUI_ENV).items()]
    (root / "native" / "env" / "open-webui.env").write_text("\n".join(lines) + "\n")


def stand_in_webui(
    servers,
    *,
    capabilities: dict | None,
    signin_status: int = 200,
    params: dict | None = None,
    signup: bool = False,
    base_urls: list[str] | None = None,
    default_models: str = MODEL,
):
    """Open WebUI's admin API as a healthy stack's answers it (WEBUI_ENV seeded it), with
    what a test changes."""
    entry = (
        None
        if capabilities is None
        else {"id": MODEL, "meta": {"capabilities": capabilities}, "params": params or {}}
    )
    return servers(
        {
            "GET /health": Answer(200, {"status": True}),
            "POST /api/v1/auths/signin": Answer(
                signin_status,
                {"token": "t", "role": "admin"}
                if signin_status == 200
                else {"detail": "The email or password provided is incorrect."},
            ),
            "GET /api/v1/models/model": Answer(200, entry) if entry else Answer(404, {}),
            "GET /api/v1/auths/admin/config": Answer(
                200, {"ENABLE_SIGNUP": signup, "DEFAULT_USER_ROLE": "pending"}
            ),
            "GET /openai/config": Answer(
                200,
                {
                    "ENABLE_OPENAI_API": True,
                    "OPENAI_API_BASE_URLS": base_urls or [WEBUI_ENV["OPENAI_API_BASE_URL"]],
                    "OPENAI_API_KEYS": [WEBUI_ENV["OPENAI_API_KEY"]],
                    "OPENAI_API_CONFIGS": {},
                },
            ),
            "GET /api/v1/configs/tool_servers": Answer(
                200, {"TOOL_SERVER_CONNECTIONS": json.loads(WEBUI_ENV["TOOL_SERVER_CONNECTIONS"])}
            ),
            "GET /api/v1/configs/models": Answer(200, {"DEFAULT_MODELS": default_models}),
        }
    )


def test_builtin_tools_on_with_a_small_context_fails_with_reconcile(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={"builtin_tools": True, "usage": True})
    root = make_stack(tmp_path / "stack", webui_url=webui.url, max_model_len=8192)
    verdict = webui_builtin_tools(ctx_for(root))
    assert verdict.status == FAIL
    assert verdict.seen == f"{MODEL}: built-in tools on, context 8192 tokens"
    assert "~8,300 tokens" in verdict.cause
    assert "r1deploy webui reconcile --stack-dir" in verdict.fix
    assert "r1_stack_webui_builtin_tools" in verdict.fix
    signin = [body for method, path, body in webui.seen if path.endswith("/signin")]
    assert json.loads(signin[0]) == {
        "email": "admin@r1deploy.local",
        "password": "right-password-123",
    }


def test_builtin_tools_asked_for_by_settings_names_the_variable(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={})  # absent: Open WebUI's default, on
    root = make_stack(tmp_path / "stack", webui_url=webui.url, builtin_tools=True)
    verdict = webui_builtin_tools(ctx_for(root))
    assert verdict.status == FAIL
    assert "set r1_stack_webui_builtin_tools: false, then make deploy" in verdict.fix


def test_an_admin_password_that_no_longer_signs_in_fails_with_rotate_secrets(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={"builtin_tools": False}, signin_status=400)
    verdict = webui_builtin_tools(ctx_for(make_stack(tmp_path / "stack", webui_url=webui.url)))
    assert verdict.status == FAIL and "HTTP 400" in verdict.seen
    assert "no longer signs in" in verdict.cause
    assert "make rotate-secrets SECRET=webui_admin_password" in verdict.fix


def test_builtin_tools_pass_when_off_or_the_context_is_large(tmp_path, servers):
    off = stand_in_webui(servers, capabilities={"builtin_tools": False})
    root = make_stack(tmp_path / "off", webui_url=off.url)
    assert webui_builtin_tools(ctx_for(root)).status == PASS
    on = stand_in_webui(servers, capabilities={"builtin_tools": True})
    big = make_stack(tmp_path / "big", webui_url=on.url, max_model_len=16384)
    assert webui_builtin_tools(ctx_for(big)).status == PASS


def test_a_missing_model_entry_warns_with_reconcile(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities=None)
    verdict = webui_builtin_tools(ctx_for(make_stack(tmp_path / "stack", webui_url=webui.url)))
    assert verdict.status == WARN and "r1deploy webui reconcile" in verdict.fix


def webui_stack(tmp_path, webui, name: str = "stack", env: dict | None = None) -> Path:
    root = make_stack(tmp_path / name, webui_url=webui.url)
    write_webui_env(root, env)
    return root


def signins(webui) -> int:
    return sum(path.endswith("/signin") for _method, path, _body in webui.seen)


# ---------------------------------------------------------------- webui.signup


def test_signup_open_while_the_stack_says_closed_fails_with_reconcile(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={}, signup=True)
    verdict = webui_signup(ctx_for(webui_stack(tmp_path, webui)))
    assert verdict.status == FAIL
    assert verdict.seen == "Open WebUI's signup is open; the stack's ENABLE_SIGNUP says closed"
    assert "anyone who reaches Open WebUI can make an account" in verdict.cause
    assert "r1deploy webui reconcile --stack-dir" in verdict.fix and "Admin > Users" in verdict.fix


def test_signup_passes_closed_or_opened_by_the_stack(tmp_path, servers):
    closed = stand_in_webui(servers, capabilities={})
    assert webui_signup(ctx_for(webui_stack(tmp_path, closed))).status == PASS
    opened = stand_in_webui(servers, capabilities={}, signup=True)
    root = webui_stack(tmp_path, opened, "open", {**WEBUI_ENV, "ENABLE_SIGNUP": "true"})
    assert webui_signup(ctx_for(root)).status == PASS


def test_signup_skips_without_the_stack_environment(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={}, signup=True)
    verdict = webui_signup(ctx_for(make_stack(tmp_path / "stack", webui_url=webui.url)))
    assert verdict.status == SKIP and "open-webui.env does not exist" in verdict.seen
    assert signins(webui) == 0  # nothing to compare with: no sign-in spent


def test_the_webui_checks_sign_in_once_and_a_refused_password_fails_once(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={"builtin_tools": False})
    ctx = ctx_for(webui_stack(tmp_path, webui))
    checks = (webui_builtin_tools, webui_signup, webui_env_drift, webui_sampling)
    assert [check(ctx).status for check in checks] == [PASS] * 4
    assert signins(webui) == 1
    refused = stand_in_webui(servers, capabilities={}, signin_status=401)
    ctx = ctx_for(webui_stack(tmp_path, refused, "refused"))
    verdicts = [check(ctx) for check in checks]
    assert [v.status for v in verdicts] == [FAIL, SKIP, SKIP, SKIP]
    assert "an earlier webui check says why" in verdicts[1].seen
    assert signins(refused) == 1


def test_a_rate_limited_sign_in_warns_and_is_not_retried(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={}, signin_status=429)
    verdict = webui_signup(ctx_for(webui_stack(tmp_path, webui)))
    assert verdict.status == WARN and "HTTP 429" in verdict.seen
    assert signins(webui) == 1


# ---------------------------------------------------------------- webui.env_drift


def test_env_drift_warns_naming_each_differing_variable(tmp_path, servers):
    webui = stand_in_webui(
        servers,
        capabilities={},
        base_urls=["http://old-backend:8000/v1"],
        default_models="another-model",
    )
    verdict = webui_env_drift(ctx_for(webui_stack(tmp_path, webui)))
    assert verdict.status == WARN
    assert "OPENAI_API_BASE_URL(S)/OPENAI_API_KEY(S) (the stack: http://127.0.0.1:8000/v1)" in (
        verdict.seen
    )
    assert f"DEFAULT_MODELS (the stack: {MODEL})" in verdict.seen
    assert "ENABLE_SIGNUP" not in verdict.seen and "TOOL_SERVER" not in verdict.seen
    assert verdict.cause.startswith(
        "Open WebUI keeps its first-start configuration in its database; an env change "
        "does not reach it"
    )
    assert "r1deploy webui reconcile --stack-dir" in verdict.fix
    assert "vllm-key" not in json.dumps(verdict.data) + verdict.seen  # never a secret
    assert not [m for m, _p, _b in webui.seen if m == "POST" and not _p.endswith("/signin")]


def test_env_drift_passes_when_the_database_is_what_the_env_says(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={})
    verdict = webui_env_drift(ctx_for(webui_stack(tmp_path, webui)))
    assert verdict.status == PASS and verdict.data == {"differing": []}


# ---------------------------------------------------------------- webui.sampling


@pytest.mark.parametrize(
    "params, off",
    [
        ({"temperature": 1.0, "top_p": 0.95}, "temperature 1 is outside 0.5-0.7"),
        ({"temperature": 0.6, "top_p": 0.5}, "top_p 0.5 is outside 0.9-1"),
    ],
    ids=["temperature", "top_p"],
)
def test_sampling_outside_the_recommended_range_warns(tmp_path, servers, params, off):
    webui = stand_in_webui(servers, capabilities={}, params=params)
    verdict = webui_sampling(ctx_for(webui_stack(tmp_path, webui)))
    assert verdict.status == WARN and off in verdict.seen
    assert "repeats itself" in verdict.cause and "model_facts.json" in verdict.cause
    assert "r1deploy webui reconcile --stack-dir" in verdict.fix


def test_sampling_passes_recommended_or_unset(tmp_path, servers):
    good = stand_in_webui(servers, capabilities={}, params={"temperature": 0.6, "top_p": 0.95})
    verdict = webui_sampling(ctx_for(webui_stack(tmp_path, good)))
    assert verdict.status == PASS and verdict.seen == f"{MODEL}: temperature 0.6, top_p 0.95"
    unset = stand_in_webui(servers, capabilities={})
    verdict = webui_sampling(ctx_for(webui_stack(tmp_path, unset, "unset")))
    assert verdict.status == PASS and "temperature not set" in verdict.seen


# ---------------------------------------------------------------- webui.function_calling


def test_legacy_function_calling_fails_naming_where_to_switch_it(tmp_path, servers):
    webui = stand_in_webui(servers, capabilities={}, params={"function_calling": "legacy"})
    verdict = webui_function_calling(ctx_for(webui_stack(tmp_path, webui)))
    assert verdict.status == FAIL and verdict.seen == f"{MODEL}: function calling legacy"
    assert "sends no tools to vLLM" in verdict.cause
    assert f"Models > {MODEL} > Advanced Params" in verdict.fix and "Native" in verdict.fix


def test_native_or_unset_function_calling_passes(tmp_path, servers):
    native = stand_in_webui(servers, capabilities={}, params={"function_calling": "native"})
    verdict = webui_function_calling(ctx_for(webui_stack(tmp_path, native)))
    assert verdict.status == PASS and verdict.seen == f"{MODEL}: function calling native"
    unset = stand_in_webui(servers, capabilities={})
    verdict = webui_function_calling(ctx_for(webui_stack(tmp_path, unset, "unset")))
    assert verdict.status == PASS and "tools go to the model" in verdict.seen


# ---------------------------------------------------------------- tools.strict

STRICT_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "a city"}},
    "required": ["city"],
    "additionalProperties": False,
}


def test_tools_that_are_not_strict_warn_naming_each_and_why(tmp_path):
    root = make_stack(tmp_path / "stack")
    loose = {**STRICT_PARAMS, "required": []}  # strict mode needs every property required
    plugins = [
        {"name": "get_weather", "params": STRICT_PARAMS},
        {"name": "opted_out", "params": STRICT_PARAMS, "strict": False},
        {"name": "optional_city", "params": loose},
    ]
    (root / "tools.json").write_text(json.dumps(plugins))
    verdict = tools_strict(ctx_for(root))
    assert verdict.status == WARN, verdict.seen
    assert "opted_out (strict: false in the file)" in verdict.seen
    assert "optional_city (its params cannot be strict: " in verdict.seen
    assert "get_weather" not in verdict.seen
    assert verdict.data["tools"] == {
        "get_weather": True,
        "opted_out": False,
        "optional_city": False,
    }
    assert '"strict": true' in verdict.fix and "r1deploy tools validate" in verdict.fix


def test_strict_tools_pass_and_the_shipped_tools_are_strict(tmp_path):
    root = make_stack(tmp_path / "stack")
    (root / "tools.json").write_text((REPO / "tools.json").read_text())
    verdict = tools_strict(ctx_for(root))
    assert verdict.status == PASS, verdict.seen


# ---------------------------------------------------------------- gateway.upstreams

TOOLS = [
    {"id": "weather_tool", "name": "get_weather", "url": "https://wttr.in/{city}"},
    {
        "id": "wikipedia_tool",
        "name": "get_wikipedia_summary",
        "url": "https://en.wikipedia.org/api/rest_v1/page/summary/{title}",
        "base_url_env": "R1_WIKIPEDIA_BASE_URL",
    },
    {"id": "wiki2", "name": "get_wikipedia_page", "url": "https://en.wikipedia.org/w/{t}"},
]


def tools_stack(tmp_path, env_extra: str = "") -> Path:
    root = make_stack(tmp_path / "stack", gateway_url="http://127.0.0.1:8090")
    (root / "tools.json").write_text(json.dumps(TOOLS))
    with (root / ".env").open("a") as env:
        env.write(env_extra)
    return root


def fake_network(dns: dict[str, list[str]], open_addresses: set[str]):
    """resolve and connect gatherers: ``dns`` host -> addresses (missing: NXDOMAIN); a
    connect opens only to ``open_addresses``. ``asked`` keeps each call."""
    asked = []

    def resolve(host, port):
        asked.append(("resolve", host, port))
        if host not in dns:
            raise socket.gaierror(-2, "Name or service not known")
        return dns[host]

    def connect(address, port, timeout_s):
        asked.append(("connect", address, port))
        if address not in open_addresses:
            raise TimeoutError("timed out")

    return {"resolve": resolve, "connect": connect}, asked


def test_upstreams_warn_per_tool_saying_dns_or_connect(tmp_path):
    gatherers, asked = fake_network({"en.wikipedia.org": ["198.35.26.96"]}, set())
    verdict = gateway_upstreams(ctx_for(tools_stack(tmp_path), **gatherers))
    assert verdict.status == WARN
    assert "get_weather (wttr.in:443 from its url): DNS does not resolve wttr.in" in verdict.seen
    assert (
        "get_wikipedia_summary (en.wikipedia.org:443 from its url): resolves, but no TCP "
        "connect in 2 s (198.35.26.96: timed out)" in verdict.seen
    )
    assert "get_wikipedia_page" in verdict.seen
    assert "the tool's url" in verdict.fix and "does not read HTTPS_PROXY" in verdict.fix
    assert asked.count(("resolve", "en.wikipedia.org", 443)) == 1  # each host asked once


def test_upstreams_follow_base_url_env_and_pass_when_reachable(tmp_path):
    root = tools_stack(tmp_path, "R1_WIKIPEDIA_BASE_URL='http://wiki.internal:8080'\n")
    dns = {"wttr.in": ["5.9.243.187"], "en.wikipedia.org": ["198.35.26.96"]}
    gatherers, asked = fake_network(dns, {"5.9.243.187", "198.35.26.96"})
    verdict = gateway_upstreams(ctx_for(root, **gatherers))
    assert verdict.status == WARN and verdict.seen.startswith(
        "get_wikipedia_summary (wiki.internal:8080 from R1_WIKIPEDIA_BASE_URL in .env"
    )
    dns["wiki.internal"] = ["10.0.0.5"]
    gatherers, _ = fake_network(dns, {"5.9.243.187", "198.35.26.96", "10.0.0.5"})
    verdict = gateway_upstreams(ctx_for(root, **gatherers))
    assert verdict.status == PASS
    assert "get_wikipedia_summary wiki.internal:8080" in verdict.seen


def test_upstreams_skip_without_a_gateway(tmp_path):
    assert gateway_upstreams(ctx_for(make_stack(tmp_path / "stack"))).status == SKIP


# ---------------------------------------------------------------- secrets.controller_match


def controller_secrets(tmp_path, files: dict[str, str]) -> Path:
    """The controller's secrets/<host>/: one file per secret, as the password lookup writes
    them (a trailing newline)."""
    directory = tmp_path / "secrets" / "host1"
    directory.mkdir(parents=True)
    for name, value in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(value + "\n")
    return directory


def secrets_stack(tmp_path) -> Path:
    root = make_stack(tmp_path / "stack")
    with (root / ".env").open("a") as env:
        env.write("VLLM_API_KEY='host-vllm-key'\nAPI_KEY_MY_APP='host-app-key'\n")
    return root


def test_a_controller_secret_that_differs_fails_naming_it_never_its_value(tmp_path):
    secrets = controller_secrets(
        tmp_path,
        {
            "vllm_api_key": "controller-vllm-key",
            "webui_admin_password": "right-password-123",
            "api_key_my-app": "host-app-key",
        },
    )
    verdict = secrets_controller_match(ctx_for(secrets_stack(tmp_path), secrets_dir=secrets))
    assert verdict.status == FAIL
    assert (
        verdict.seen == "the controller's copy differs from the host's: vllm_api_key (VLLM_API_KEY)"
    )
    assert f"cd {secrets} && rm vllm_api_key" in verdict.fix
    assert "make rotate-secrets SECRET=vllm_api_key" in verdict.fix
    assert verdict.data["same"] == ["api_key_my-app", "webui_admin_password"]
    shown = json.dumps(verdict.data) + verdict.seen + verdict.cause + verdict.fix
    assert "controller-vllm-key" not in shown and "host-vllm-key" not in shown


def test_a_different_front_door_ca_fails_with_its_own_fix(tmp_path):
    secrets = controller_secrets(tmp_path, {"tls/ca.key": "CONTROLLER CA"})
    root = secrets_stack(tmp_path)
    (root / "front-door" / "tls").mkdir(parents=True)
    (root / "front-door" / "tls" / "ca.key").write_text("HOST CA\n")
    verdict = secrets_controller_match(ctx_for(root, secrets_dir=secrets))
    assert verdict.status == FAIL and "tls/ca.key" in verdict.seen
    assert f"rm -r {secrets / 'tls'}" in verdict.fix


def test_secrets_pass_when_they_agree_and_skip_without_secrets_dir(tmp_path):
    vault = "$ANSIBLE_VAULT;1.1;AES256\n6162"
    secrets = controller_secrets(
        tmp_path,
        {"vllm_api_key": "host-vllm-key", "webui_secret_key": vault, "tools_gateway_key": "k"},
    )
    root = secrets_stack(tmp_path)
    verdict = secrets_controller_match(ctx_for(root, secrets_dir=secrets))
    assert verdict.status == PASS
    assert verdict.seen.startswith("1 secrets agree with the host's (vllm_api_key)")
    assert "not compared (vault-encrypted): webui_secret_key" in verdict.seen
    assert "the next deploy writes them): tools_gateway_key" in verdict.seen
    assert secrets_controller_match(ctx_for(root)).status == SKIP


def test_the_cli_takes_secrets_dir(capsys, tmp_path):
    secrets = controller_secrets(tmp_path, {"vllm_api_key": "controller-vllm-key"})
    root = secrets_stack(tmp_path)
    argv = ["doctor", "--stack-dir", str(root), "--only", "secrets", "--secrets-dir", str(secrets)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  secrets.controller_match") and "controller-vllm-key" not in out


# ---------------------------------------------------------------- disk.free


def fake_disk(free_by_path: dict[str, float]):
    def usage(path: str):
        free = int(free_by_path[path] * GIB)
        return (100 * GIB, 100 * GIB - free, free)

    return usage


@pytest.mark.parametrize("free_gib, status", [(50, PASS), (2, WARN), (0.5, FAIL)])
def test_disk_free_against_the_threshold_with_the_numbers(tmp_path, free_gib, status):
    root = make_stack(tmp_path / "stack")
    verdict = disk_free(ctx_for(root, disk_usage=fake_disk({str(root): free_gib})))
    assert verdict.status == status
    assert f"{free_gib:.1f} GiB free of 100.0 GiB" in verdict.seen
    if status != PASS:
        assert "less than 5.0 GiB free" in verdict.cause and "--min-free-gib" in verdict.fix


def test_disk_free_measures_a_local_model_dir_and_takes_the_threshold(tmp_path):
    model = tmp_path / "models" / "r1"
    model.mkdir(parents=True)
    root = make_stack(tmp_path / "stack", model_path=str(model))
    usage = fake_disk({str(root): 50, str(model): 3})
    verdict = disk_free(ctx_for(root, disk_usage=usage))
    assert verdict.status == WARN and f"model directory {model}: 3.0 GiB" in verdict.seen
    assert disk_free(ctx_for(root, disk_usage=usage, min_free_bytes=2 * GIB)).status == PASS


# ---------------------------------------------------------------- frontdoor.certificate


def certificate(days_left: float) -> tuple[bytes, bytes]:
    """A self-signed certificate ending ``days_left`` days after NOW: (DER, PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r1deploy.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=300))
        .not_valid_after(NOW + datetime.timedelta(days=days_left))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.DER),
        cert.public_bytes(serialization.Encoding.PEM),
    )


DOOR = {"enabled": True, "local_url": "https://127.0.0.1:8443", "tls_mode": "internal_ca"}


@pytest.mark.parametrize("days, status", [(200, PASS), (10, WARN), (1, FAIL)])
def test_the_served_certificate_days_left(tmp_path, days, status):
    served, _ = certificate(days)
    root = make_stack(tmp_path / "stack", front_door=DOOR)
    verdict = frontdoor_certificate(
        ctx_for(root, served_certificate=lambda url, t: served, now=lambda: NOW)
    )
    assert verdict.status == status and f"({days} days left)" in verdict.seen
    assert "https://127.0.0.1:8443 serves" in verdict.seen
    if status != PASS:
        assert "make deploy" in verdict.fix and "within 30 days" in verdict.fix


def test_the_stack_certificate_file_when_the_front_door_does_not_answer(tmp_path):
    _, pem = certificate(5)
    root = make_stack(tmp_path / "stack", front_door=DOOR)
    (root / "front-door" / "tls").mkdir(parents=True)
    (root / "front-door" / "tls" / "server.crt").write_bytes(pem)

    def refused(url, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    verdict = frontdoor_certificate(ctx_for(root, served_certificate=refused, now=lambda: NOW))
    assert verdict.status == WARN and "server.crt ends" in verdict.seen


def test_a_renewed_file_that_is_not_served_yet_says_restart(tmp_path):
    served, _ = certificate(2)
    _, renewed = certificate(397)
    root = make_stack(tmp_path / "stack", front_door={**DOOR, "tls_mode": "provided"})
    (root / "front-door" / "tls").mkdir(parents=True)
    (root / "front-door" / "tls" / "server.crt").write_bytes(renewed)
    verdict = frontdoor_certificate(
        ctx_for(root, served_certificate=lambda url, t: served, now=lambda: NOW)
    )
    assert verdict.status == FAIL and "restart it" in verdict.fix


def test_no_front_door_skips_the_certificate(tmp_path):
    assert frontdoor_certificate(ctx_for(make_stack(tmp_path / "stack"))).status == SKIP


# ---------------------------------------------------------------- clock.skew


def test_clock_skew_warns_over_a_minute_with_the_fix(tmp_path, servers):
    ahead = format_datetime(NOW + datetime.timedelta(seconds=300), usegmt=True)
    vllm = servers({"GET /health": Answer(200, {}, date=ahead)})
    root = make_stack(tmp_path / "stack", vllm_url=vllm.url)
    verdict = clock_skew(ctx_for(root, now=lambda: NOW))
    assert verdict.status == WARN
    assert verdict.seen.startswith("vllm's clock is 300 s ahead of this machine's")
    assert "timedatectl set-ntp true" in verdict.fix


def test_clock_skew_passes_in_time_and_skips_with_nothing_answering(tmp_path, servers):
    root = make_stack(tmp_path / "stack", webui_url=servers().url)  # real Date, real now
    verdict = clock_skew(ctx_for(root))
    assert verdict.status == PASS and verdict.data["service"] == "open-webui"
    assert clock_skew(ctx_for(make_stack(tmp_path / "down"))).status == SKIP


# ---------------------------------------------------------------- the CLI


def test_every_check_has_a_unique_dotted_id():
    ids = [c.id for c in DOCTOR_CHECKS]  # their rows in docs/doctor.md: test_docs_registries
    assert len(ids) == len(set(ids)) == 22 and all("." in i for i in ids)


def test_no_stack_dir_cannot_run(capsys, tmp_path):
    assert main(["doctor"]) == 2
    assert "--stack-dir" in capsys.readouterr().err
    assert main(["doctor", "--stack-dir", str(tmp_path)]) == 2
    assert "settings.json does not exist" in capsys.readouterr().err


def test_only_that_matches_nothing_cannot_run(capsys, tmp_path):
    root = make_stack(tmp_path / "stack")
    assert main(["doctor", "--stack-dir", str(root), "--only", "nvidia"]) == 2
    assert "matches no check" in capsys.readouterr().err


def test_all_pass_exits_0_and_json_has_one_entry_per_check(capsys, tmp_path, servers, monkeypatch):
    # This machine as the gpu checks see it: no NVIDIA GPU (whatever the test host has).
    monkeypatch.setattr("r1deploy.doctor.core.default_host", RecordedHost)
    webui = stand_in_webui(servers, capabilities={"builtin_tools": False})
    metrics = Answer(200, vllm_metrics(prompts=[400], answers=[900]))
    vllm = servers({"GET /health": Answer(200, {}), "GET /metrics": metrics})
    root = make_stack(
        tmp_path / "stack",
        vllm_url=vllm.url,
        webui_url=webui.url,
        logs={"vllm": "INFO ready\n"},
    )
    write_webui_env(root)
    code = main(["doctor", "--stack", str(root), "--format", "json", "--min-free-gib", "0"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert code == 0 and report["exit_code"] == 0
    assert set(report) == {"stack_dir", "exit_code", "wall_s", "counts", "checks"}
    assert [c["id"] for c in report["checks"]] == [c.id for c in DOCTOR_CHECKS]
    assert set(report["checks"][0]) == {
        "id",
        "status",
        "seen",
        "cause",
        "fix",
        "duration_s",
        "data",
    }
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == {
        "services.reachable": "pass",
        "webui.function_calling": "pass",
        "tools.strict": "skip",  # the stand-in stack has no tools.json
        "vllm.oom": "pass",
        "vllm.tool_flags": "pass",
        "vllm.context_pressure": "pass",
        "webui.builtin_tools": "pass",
        "webui.signup": "pass",
        "webui.env_drift": "pass",
        "webui.sampling": "pass",
        "gateway.upstreams": "skip",
        "secrets.controller_match": "skip",
        "monitoring.targets": "skip",  # monitoring off in this stack
        "monitoring.alerts": "skip",
        "disk.free": "pass",
        "frontdoor.certificate": "skip",
        "clock.skew": "pass",
        **{c.id: "skip" for c in DOCTOR_CHECKS if c.id.startswith("gpu.")},
    }
    assert report["counts"] == {"pass": 11, "warn": 0, "fail": 0, "skip": 11}
    assert "11 passed, 0 warned, 0 failed, 11 skipped" in out.err  # the table goes to stderr


def test_a_failure_exits_1_and_the_text_says_cause_and_fix(capsys, tmp_path):
    root = make_stack(tmp_path / "stack", args=["--served-model-name", MODEL])
    code = main(["doctor", "--stack-dir", str(root), "--only", "vllm.tool"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("FAIL  vllm.tool_flags")
    assert "\n      cause: tool calls never trigger" in out and "\n      fix: " in out


def test_a_warning_alone_exits_0(capsys, tmp_path, monkeypatch):
    root = make_stack(tmp_path / "stack")
    monkeypatch.setattr("shutil.disk_usage", fake_disk({str(root): 2}))
    code = main(["doctor", "--stack-dir", str(root), "--only", "disk", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["checks"][0]["status"] == WARN
    code = main(["doctor", "--stack-dir", str(root), "--only", "disk", "--min-free-gib", "12"])
    assert code == 1 and capsys.readouterr().out.startswith("FAIL  disk.free")


def test_only_filters_by_prefix_and_repeats(capsys, tmp_path):
    root = make_stack(tmp_path / "stack", logs={"vllm": "ok\n"})
    main(
        [
            "doctor",
            "--stack-dir",
            str(root),
            "--only",
            "vllm",
            "--only",
            "clock",
            "--format",
            "json",
        ]
    )
    ids = [c["id"] for c in json.loads(capsys.readouterr().out)["checks"]]
    assert ids == ["vllm.oom", "vllm.tool_flags", "vllm.context_pressure", "clock.skew"]
