"""r1deploy compose validate: each rule fails on a bad input with its exact message."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from r1deploy.cli import main
from r1deploy.compose.validate import validate_file, validate_text

KEY = "${VLLM_API_KEY:?missing}"

# A minimal stack in the shape the role renders; every test breaks one thing in it.
GOOD = {
    "name": "r1deploy",
    "services": {
        "vllm": {
            "image": "vllm/vllm-openai:v0.32.0",
            "command": [
                "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
                "--max-model-len",
                "4096",
                "--gpu-memory-utilization",
                "0.9",
                "--tensor-parallel-size",
                "1",
                "--chat-template",
                "/stack/chat_template.jinja",
                "--enable-auto-tool-choice",
                "--tool-call-parser",
                "hermes",
                "--reasoning-parser",
                "deepseek_r1",
            ],
            "environment": {"VLLM_API_KEY": KEY},
            "ipc": "host",
            "ports": ["127.0.0.1:8000:8000"],
            "deploy": {
                "resources": {
                    "reservations": {
                        "devices": [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
                    }
                }
            },
            "healthcheck": {"test": ["CMD", "true"]},
        },
        "open-webui": {
            "image": "ghcr.io/open-webui/open-webui:v0.12.4",
            "environment": {
                "OPENAI_API_BASE_URL": "http://vllm:8000/v1",
                "OPENAI_API_KEY": KEY,
                "WEBUI_SECRET_KEY": "${WEBUI_SECRET_KEY:?missing}",
            },
            "ports": ["3000:8080"],
            "depends_on": {"vllm": {"condition": "service_healthy"}},
        },
    },
}


def check(mutate=None, env=None, text=None):
    document = copy.deepcopy(GOOD)
    if mutate:
        mutate(document)
    text = text if text is not None else yaml.safe_dump(document, sort_keys=False)
    return validate_text(text, "compose.yaml", env)


def only(report, rule):
    found = [d for d in report.diagnostics if d.rule == rule]
    assert found, f"no {rule} finding in {[str(d) for d in report.diagnostics]}"
    return found


def vllm(document):
    return document["services"]["vllm"]


def webui(document):
    return document["services"]["open-webui"]


def set_flag(document, flag, value):
    command = vllm(document)["command"]
    command[command.index(flag) + 1] = value


def test_the_good_stack_has_no_findings():
    report = check()
    assert report.diagnostics == []
    assert report.valid


def test_yaml_syntax_error_names_the_line():
    report = check(text="services:\n  vllm:\n    image: [a\n")
    (finding,) = report.diagnostics
    assert finding.rule == "yaml-syntax"
    assert finding.line == 4
    assert finding.message.startswith("invalid YAML: ")


def test_duplicate_key_is_reported_at_its_line():
    text = "services:\n  a:\n    image: x:1\n    image: x:2\n"
    (finding,) = only(check(text=text), "duplicate-key")
    assert finding.message == "key image appears twice"
    assert (finding.pointer, finding.line) == ("/services/a/image", 4)


def test_schema_rejects_an_unknown_service_key_and_suggests_the_right_one():
    report = check(lambda d: vllm(d).update(imagee="x"))
    (finding,) = only(report, "compose-schema")
    assert finding.message == '"imagee" is not a Compose key here'
    assert finding.fix == 'did you mean "image"? Rename the key'
    assert finding.pointer == "/services/vllm/imagee"


def test_schema_rejects_a_wrong_type():
    report = check(lambda d: vllm(d).update(ipc=["host"]))
    (finding,) = only(report, "compose-schema")
    assert finding.pointer == "/services/vllm/ipc"
    assert finding.message == "not valid Compose: ['host'] is not of type 'string'"


def test_image_without_tag_floats():
    (finding,) = only(check(lambda d: vllm(d).update(image="vllm/vllm-openai")), "image-pinned")
    assert (
        finding.message
        == "image vllm/vllm-openai of service vllm has no tag, so it floats to latest"
    )
    assert finding.pointer == "/services/vllm/image"


def test_image_latest_is_not_pinned():
    report = check(lambda d: webui(d).update(image="ghcr.io/open-webui/open-webui:main"))
    (finding,) = only(report, "image-pinned")
    assert finding.message == (
        "image ghcr.io/open-webui/open-webui:main of service open-webui is not pinned: 'main' moves"
    )


def test_image_digest_is_pinned():
    digest = "vllm/vllm-openai@sha256:" + "a" * 64
    assert check(lambda d: vllm(d).update(image=digest)).diagnostics == []


def test_gpu_reservation_without_gpu_capability():
    def mutate(d):
        vllm(d)["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] = ["utility"]

    (finding,) = only(check(mutate), "gpu-reservation")
    assert finding.message == (
        "service vllm: the GPU reservation lacks capabilities [gpu]; Docker then selects no GPU"
    )
    assert finding.pointer == "/services/vllm/deploy/resources/reservations/devices/0/capabilities"


def test_gpu_reservation_count_and_device_ids_together():
    def mutate(d):
        vllm(d)["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] = ["0"]

    (finding,) = only(check(mutate), "gpu-reservation")
    assert finding.message == "service vllm: count and device_ids are mutually exclusive"


def test_vllm_without_gpu_reservation():
    (finding,) = only(check(lambda d: vllm(d).pop("deploy")), "gpu-reservation")
    assert finding.message == "service vllm runs vLLM but reserves no GPU"


def test_tensor_parallel_needs_as_many_reserved_gpus():
    (finding,) = only(
        check(lambda d: set_flag(d, "--tensor-parallel-size", "2")), "gpu-reservation"
    )
    assert finding.message == (
        "service vllm: tensor parallel size 2 needs 2 GPUs but only 1 are reserved"
    )


def test_cdi_request_takes_qualified_names_not_count():
    def mutate(d):
        vllm(d)["deploy"]["resources"]["reservations"]["devices"] = [
            {"driver": "cdi", "count": 1, "device_ids": ["0"], "capabilities": ["gpu"]}
        ]

    messages = [f.message for f in only(check(mutate), "gpu-reservation")]
    assert messages == [
        "service vllm: a CDI device request takes device_ids, not count",
        "service vllm: CDI device_ids must be fully qualified CDI names, got ['0']",
    ]


def test_webui_wrong_env_name_openai_base_url():
    def mutate(d):
        env = webui(d)["environment"]
        env["OPENAI_BASE_URL"] = env.pop("OPENAI_API_BASE_URL")

    report = check(mutate)
    (wrong,) = only(report, "webui-env")
    assert wrong.message == "service open-webui: Open WebUI does not read OPENAI_BASE_URL"
    assert wrong.fix == "rename it to OPENAI_API_BASE_URL"
    (backend,) = only(report, "webui-backend")
    assert backend.message == (
        "service open-webui: Open WebUI has no OPENAI_API_BASE_URL, so it has no model"
    )


def test_webui_env_near_miss_is_a_warning():
    report = check(lambda d: webui(d)["environment"].update(ENABLE_SIGNUPS="false"))
    (finding,) = only(report, "webui-env")
    assert finding.severity == "warning"
    assert (
        finding.message
        == "service open-webui: ENABLE_SIGNUPS looks like a misspelling of ENABLE_SIGNUP"
    )
    assert report.valid


def test_webui_backend_must_be_a_service_of_the_file():
    report = check(
        lambda d: webui(d)["environment"].update(OPENAI_API_BASE_URL="http://localhost:8000/v1")
    )
    (finding,) = only(report, "webui-backend")
    assert finding.message == (
        "service open-webui: OPENAI_API_BASE_URL http://localhost:8000/v1 points at 'localhost', "
        "which is not a service of this file (model servers: vllm)"
    )
    assert finding.pointer == "/services/open-webui/environment/OPENAI_API_BASE_URL"


def test_webui_backend_port_must_be_the_container_port():
    report = check(
        lambda d: webui(d)["environment"].update(OPENAI_API_BASE_URL="http://vllm:18000/v1")
    )
    (finding,) = only(report, "webui-backend")
    assert finding.message == (
        "service open-webui: OPENAI_API_BASE_URL http://vllm:18000/v1 uses port 18000 but vllm "
        "listens on 8000"
    )


def test_webui_backend_follows_the_port_flag():
    def mutate(d):
        vllm(d)["command"] += ["--port", "9000"]
        vllm(d)["ports"] = ["127.0.0.1:8000:9000"]
        webui(d)["environment"]["OPENAI_API_BASE_URL"] = "http://vllm:9000/v1"

    assert check(mutate).diagnostics == []


def test_webui_backend_url_must_end_in_v1():
    report = check(lambda d: webui(d)["environment"].update(OPENAI_API_BASE_URL="http://vllm:8000"))
    (finding,) = only(report, "webui-backend")
    assert (
        finding.message
        == "service open-webui: OPENAI_API_BASE_URL http://vllm:8000 must end in /v1"
    )


def test_webui_without_the_key_of_a_guarded_vllm():
    report = check(lambda d: webui(d)["environment"].pop("OPENAI_API_KEY"))
    (finding,) = only(report, "webui-backend")
    assert finding.message == (
        "service open-webui: the model server requires an API key but Open WebUI has no "
        "OPENAI_API_KEY, so every request gets 401"
    )


def test_webui_must_wait_for_a_healthy_backend():
    report = check(lambda d: webui(d).pop("depends_on"))
    (finding,) = only(report, "webui-depends")
    assert finding.severity == "warning"
    assert finding.message == (
        "service open-webui: Open WebUI does not wait for vllm to be healthy, "
        "so it starts with no model"
    )


def test_waiting_for_health_needs_a_healthcheck():
    report = check(lambda d: vllm(d).pop("healthcheck"))
    (finding,) = only(report, "webui-depends")
    assert finding.message == (
        "service open-webui waits for vllm to be healthy but vllm has no healthcheck: "
        "docker compose refuses to start"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--tensor-parallel-size",
            "5",
            "service vllm: tensor parallel size 5 does not divide the model's 12 attention heads",
        ),
        (
            "--max-model-len",
            "200000",
            "service vllm: --max-model-len 200000 exceeds the model's 131072 tokens "
            "(max_position_embeddings)",
        ),
        (
            "--gpu-memory-utilization",
            "1.5",
            "service vllm: --gpu-memory-utilization 1.5 is not in (0, 1]",
        ),
        (
            "--gpu-memory-utilization",
            "0",
            "service vllm: --gpu-memory-utilization 0 is not in (0, 1]",
        ),
    ],
)
def test_vllm_flag_out_of_range(flag, value, message):
    def mutate(d):
        set_flag(d, flag, value)
        devices = vllm(d)["deploy"]["resources"]["reservations"]["devices"]
        devices[0]["count"] = "all"  # keep the GPU rule out of the way

    (finding,) = only(check(mutate), "vllm-flags")
    assert finding.message == message
    assert finding.pointer.startswith("/services/vllm/command/")
    assert finding.line is not None


def test_max_model_len_with_suffix_is_understood():
    (finding,) = only(check(lambda d: set_flag(d, "--max-model-len", "200k")), "vllm-flags")
    assert "--max-model-len 200000 exceeds" in finding.message
    assert check(lambda d: set_flag(d, "--max-model-len", "128k")).diagnostics == []


def test_auto_tool_choice_without_parser():
    def mutate(d):
        command = vllm(d)["command"]
        del command[command.index("--tool-call-parser") : command.index("--tool-call-parser") + 2]

    (finding,) = only(check(mutate), "vllm-flags")
    assert finding.message == (
        "service vllm: --enable-auto-tool-choice without --tool-call-parser: vLLM refuses to start"
    )


def test_parser_without_auto_tool_choice():
    (finding,) = only(
        check(lambda d: vllm(d)["command"].remove("--enable-auto-tool-choice")), "vllm-flags"
    )
    assert finding.message == (
        "service vllm: --tool-call-parser without --enable-auto-tool-choice: tool calls in the "
        "model's text are never parsed"
    )


def test_removed_enable_reasoning_flag():
    (finding,) = only(
        check(lambda d: vllm(d)["command"].append("--enable-reasoning")), "vllm-flags"
    )
    assert (
        finding.message == "service vllm: --enable-reasoning was removed from vLLM and is rejected"
    )


def test_missing_chat_template_is_a_warning():
    def mutate(d):
        command = vllm(d)["command"]
        del command[command.index("--chat-template") : command.index("--chat-template") + 2]

    report = check(mutate)
    (finding,) = only(report, "vllm-flags")
    assert finding.severity == "warning"
    assert finding.message.startswith("service vllm: no --chat-template:")
    assert report.valid


def test_flags_in_a_string_command_with_equals():
    def mutate(d):
        vllm(d)["command"] = (
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --tensor-parallel-size=6 "
            "--chat-template x --enable-auto-tool-choice --tool-call-parser hermes"
        )
        vllm(d)["deploy"]["resources"]["reservations"]["devices"][0]["count"] = 6

    assert check(mutate).diagnostics == []


def test_secret_literal_in_environment():
    report = check(lambda d: webui(d)["environment"].update(OPENAI_API_KEY="sk-plain-text-key"))
    (finding,) = only(report, "secret-literal")
    assert (
        finding.message
        == "service open-webui: OPENAI_API_KEY holds a literal secret in the compose file"
    )
    assert finding.fix == (
        "put it in .env as OPENAI_API_KEY=... and write OPENAI_API_KEY: ${OPENAI_API_KEY:?} here"
    )
    assert finding.pointer == "/services/open-webui/environment/OPENAI_API_KEY"


def test_secret_literal_in_list_environment():
    def mutate(d):
        vllm(d)["environment"] = ["VLLM_API_KEY=abc123def456"]

    (finding,) = only(check(mutate), "secret-literal")
    assert (
        finding.message == "service vllm: VLLM_API_KEY holds a literal secret in the compose file"
    )
    assert finding.pointer == "/services/vllm/environment/0"


def test_secret_literal_api_key_flag():
    (finding,) = only(
        check(lambda d: vllm(d)["command"].extend(["--api-key", "abc123"])), "secret-literal"
    )
    assert finding.message == "service vllm: --api-key is given a literal secret"


def test_secret_literal_in_tool_server_connections():
    connections = json.dumps([{"url": "http://tools-gateway:8090", "key": "plain"}])
    report = check(lambda d: webui(d)["environment"].update(TOOL_SERVER_CONNECTIONS=connections))
    (finding,) = only(report, "secret-literal")
    assert (
        finding.message == "service open-webui: TOOL_SERVER_CONNECTIONS[0].key is a literal secret"
    )


def test_secret_from_env_file_written_into_compose():
    secret = "Zx9QwErTy12345678"
    report = check(
        lambda d: webui(d)["environment"].update(DEFAULT_MODELS=secret),
        env={"WEBUI_SECRET_KEY": secret},
    )
    (finding,) = only(report, "secret-literal")
    assert (
        finding.message == "the value of WEBUI_SECRET_KEY from .env is written in the compose file"
    )
    assert secret not in str(finding)


def test_hugging_face_token_literal():
    token = "hf_" + "a" * 34
    (finding,) = only(
        check(lambda d: vllm(d)["environment"].update(HF_HUB="x " + token)), "secret-literal"
    )
    assert finding.message == "a Hugging Face token is written in the compose file"


def test_vllm_published_on_all_interfaces():
    report = check(lambda d: vllm(d).update(ports=["8000:8000"]))
    (finding,) = only(report, "public-port")
    assert finding.message.startswith(
        "service vllm publishes the model API (port 8000) on all interfaces: it would be "
        "reachable from the network"
    )
    assert finding.pointer == "/services/vllm/ports/0"


def test_vllm_published_on_a_public_address_long_syntax():
    report = check(
        lambda d: vllm(d).update(
            ports=[{"target": 8000, "published": "8000", "host_ip": "10.0.0.5"}]
        )
    )
    (finding,) = only(report, "public-port")
    assert finding.message.startswith(
        "service vllm publishes the model API (port 8000) on 10.0.0.5: it would be reachable "
        "from the network, and vLLM's key guards only /v1/*"
    )


def test_a_label_no_longer_opens_the_model_api():
    def mutate(d):
        vllm(d)["ports"] = ["0.0.0.0:8000:8000"]
        vllm(d)["labels"] = {"io.r1deploy.allow-public": "true"}

    (finding,) = only(check(mutate), "public-port")
    assert "on 0.0.0.0" in finding.message


@pytest.mark.parametrize(
    ("port", "env", "where"),
    [
        # A default after :- is what compose publishes on while .env does not set it.
        ("${VLLM_HOST:-0.0.0.0}:8000:8000", {}, "on 0.0.0.0"),
        ("${VLLM_HOST:-127.0.0.1}:8000:8000", {"VLLM_HOST": "10.0.0.5"}, "on 10.0.0.5"),
        ("$VLLM_HOST:8000:8000", {"VLLM_HOST": "0.0.0.0"}, "on 0.0.0.0"),
        # An address .env does not give is not known to be loopback.
        ("${VLLM_HOST}:8000:8000", {}, "on all interfaces"),
        ("${VLLM_HOST?set it}:8000:8000", {}, "an address .env does not set"),
        ("${VLLM_PORT:-8000}:8000", {}, "on all interfaces"),
    ],
)
def test_interpolated_port_forms_are_read_as_compose_fills_them(port, env, where):
    def mutate(d):
        vllm(d)["ports"] = [port]

    (finding,) = only(check(mutate, env=env), "public-port")
    assert where in finding.message


def test_interpolation_to_loopback_is_fine():
    def mutate(d):
        vllm(d)["ports"] = ["${VLLM_HOST:-127.0.0.1}:8000:8000"]

    assert not [f for f in check(mutate).diagnostics if f.rule == "public-port"]


@pytest.mark.parametrize(
    "runs_vllm",
    [
        {"image": "myorg/llm-server:1.2", "command": ["vllm", "serve", "m"]},
        {
            "image": "python:3.12",
            "entrypoint": ["python", "-m", "vllm.entrypoints.openai.api_server"],
        },
        {"image": "python:3.12", "entrypoint": ["/opt/venv/bin/vllm"], "command": ["serve", "m"]},
    ],
)
def test_vllm_under_another_image_name_is_a_model_api_too(runs_vllm):
    def mutate(d):
        vllm(d).update(runs_vllm)
        vllm(d)["ports"] = ["0.0.0.0:8000:8000"]

    (finding,) = only(check(mutate), "public-port")
    assert "publishes the model API" in finding.message


def test_vllm_host_network_is_public():
    def mutate(d):
        vllm(d)["network_mode"] = "host"
        vllm(d).pop("ports")

    (finding,) = only(check(mutate), "public-port")
    assert finding.message.startswith(
        "service vllm: network_mode host exposes the model API on every interface"
    )


def test_llamacpp_backend_defaults_to_port_8080():
    def mutate(d):
        d["services"]["llamacpp"] = {
            "image": "ghcr.io/ggml-org/llama.cpp:server-b11176",
            "command": ["--jinja"],
            "ports": ["127.0.0.1:8000:8080"],
            "healthcheck": {"test": ["CMD", "true"]},
        }
        webui(d)["environment"]["OPENAI_API_BASE_URL"] = "http://llamacpp:8000/v1"
        webui(d)["depends_on"]["llamacpp"] = {"condition": "service_healthy"}

    (finding,) = only(check(mutate), "webui-backend")
    assert finding.message == (
        "service open-webui: OPENAI_API_BASE_URL http://llamacpp:8000/v1 uses port 8000 but "
        "llamacpp listens on 8080"
    )


def test_validate_file_reads_the_sibling_env(tmp_path):
    secret = "Kp3mNb7Vc9Xz1Lq5"
    document = copy.deepcopy(GOOD)
    webui(document)["environment"]["DEFAULT_MODELS"] = secret
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(document))
    (tmp_path / ".env").write_text(f"# secrets\nWEBUI_SECRET_KEY='{secret}'\n")
    report = validate_file(tmp_path / "compose.yaml")
    assert [d.rule for d in report.diagnostics] == ["secret-literal"]


def test_cli_exit_codes_and_json(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    document = copy.deepcopy(GOOD)
    vllm(document)["image"] = "vllm/vllm-openai:latest"
    bad.write_text(yaml.safe_dump(document))

    assert main(["compose", "validate", str(good)]) == 0
    assert "valid (0 errors, 0 warnings)" in capsys.readouterr().out

    assert main(["compose", "validate", "--format", "json", str(bad)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    assert result["errors"] == 1
    (finding,) = result["diagnostics"]
    assert finding["rule"] == "image-pinned"
    assert finding["pointer"] == "/services/vllm/image"
    assert isinstance(finding["line"], int)

    assert main(["compose", "validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


# --- the served model's facts (r1deploy/model_facts.json) --------------------------------


def serve(model, **flags):
    """GOOD with vLLM serving ``model`` and ``flags`` set (all GPUs, so the GPU rule is quiet)."""

    def mutate(d):
        command = vllm(d)["command"]
        command[0] = model
        for flag, value in flags.items():
            set_flag(d, flag, value)
        vllm(d)["deploy"]["resources"]["reservations"]["devices"][0]["count"] = "all"

    return check(mutate)


def test_the_test_model_is_held_to_its_own_facts():
    report = serve(
        "r1deploy/test-model", **{"--tensor-parallel-size": "3", "--max-model-len": "16384"}
    )
    assert [f.message for f in only(report, "vllm-flags")] == [
        "service vllm: tensor parallel size 3 does not divide the model's 4 attention heads",
        "service vllm: --max-model-len 16384 exceeds the model's 8192 tokens "
        "(max_position_embeddings)",
    ]
    assert only(report, "vllm-flags")[0].fix == "set --tensor-parallel-size to 1, 2 or 4"


def test_a_local_copy_is_known_by_its_directory_name():
    report = serve("/models/DeepSeek-R1-Distill-Qwen-1.5B", **{"--tensor-parallel-size": "5"})
    (finding,) = only(report, "vllm-flags")
    assert finding.message == (
        "service vllm: tensor parallel size 5 does not divide the model's 12 attention heads"
    )


def test_a_model_the_facts_file_does_not_know_is_held_to_the_r1_distills_saying_so():
    report = serve("/models/my-copy", **{"--max-model-len": "200000"})
    (finding,) = only(report, "vllm-flags")
    assert finding.message == (
        "service vllm: --max-model-len 200000 exceeds the model's 131072 tokens "
        "(max_position_embeddings) (the R1 distill's: r1deploy/model_facts.json has no facts "
        "for /models/my-copy)"
    )


def test_the_numbers_come_from_the_facts_file(monkeypatch):
    from r1deploy import modelfacts

    facts = json.loads(modelfacts.FACTS_FILE.read_text())
    facts["models"][modelfacts.R1_DISTILL].update(
        num_attention_heads=16, max_position_embeddings=4000
    )
    monkeypatch.setattr(modelfacts, "_all", lambda: facts)
    report = serve(modelfacts.R1_DISTILL, **{"--tensor-parallel-size": "3"})
    assert [f.message for f in only(report, "vllm-flags")] == [
        "service vllm: tensor parallel size 3 does not divide the model's 16 attention heads",
        "service vllm: --max-model-len 4096 exceeds the model's 4000 tokens "
        "(max_position_embeddings)",
    ]
    assert only(report, "vllm-flags")[0].fix == "set --tensor-parallel-size to 1, 2, 4, 8 or 16"


def _with_front_door(d):
    d["services"]["front-door"] = {
        "image": "nginx:1.22.1",
        "ports": ["0.0.0.0:443:8443", "0.0.0.0:80:8080"],
    }


def test_with_a_front_door_open_webui_published_beside_it_is_refused():
    (finding,) = only(check(_with_front_door), "front-door-only")
    assert finding.pointer == "/services/open-webui/ports/0"
    assert "beside the front door (front-door)" in finding.message


def test_with_a_front_door_everything_else_on_loopback_is_fine():
    def mutate(d):
        _with_front_door(d)
        webui(d)["ports"] = ["127.0.0.1:3000:8080"]

    assert not [f for f in check(mutate).diagnostics if f.rule == "front-door-only"]
