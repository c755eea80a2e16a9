"""`r1deploy export helm`: the golden stacks export to values the vendored chart schema
takes, each inventory value lands in its chart field, a bad value is refused naming its
path, and no secret of the stack reaches the output."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from r1deploy.cli import main
from r1deploy.cliconv import ExitCode
from r1deploy.export import helm
from r1deploy.stackdir import StackDir

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
GPU_GOLDENS = sorted(
    p.name
    for p in GOLDEN.iterdir()
    if (p / "settings.json").is_file()
    and json.loads((p / "settings.json").read_text())["profile"] == "gpu"
)
SECRETS = {
    "VLLM_API_KEY": "sk-vllm-7f3c9a1e5b2d4c6f8a0b",
    "WEBUI_SECRET_KEY": "webui-secret-1a2b3c4d5e6f",
    "WEBUI_ADMIN_PASSWORD": "admin-pass-9z8y7x6w",
    "TOOLS_GATEWAY_KEY": "gw-key-0123456789abcdef",
    "MONITORING_PASSWORD": "mon-pass-fedcba987654",
    "API_KEY_OPS": "ops-key-5566778899aabb",
    "HF_TOKEN": "hf_TokenValueThatMustNotLeak",
}


def stack_dir(root: Path, golden: str = "gpu-default", env: dict | None = None, **changes):
    """A stack directory: the golden settings.json (with ``changes`` applied by JSON path
    ``a__b``), the chat template it names and a .env."""
    root.mkdir(parents=True, exist_ok=True)
    settings = json.loads((GOLDEN / golden / "settings.json").read_text())
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = settings
        for key in parents:
            node = node[key]
        node[last] = value
    (root / "settings.json").write_text(json.dumps(settings))
    shutil.copy(REPO / "compose" / "chat_template_r1_tools.jinja", root / "chat_template.jinja")
    env = SECRETS if env is None else env
    (root / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
    return root


def export(root: Path, **options) -> helm.HelmExport:
    return helm.build(StackDir.load(root), helm.Options(**options))


def model_spec(values: dict) -> dict:
    (entry,) = values["servingEngineSpec"]["modelSpec"]
    return entry


# The vendored schema


def test_the_vendored_schema_is_the_file_and_version_its_readme_records():
    readme = (helm.SCHEMA_FILE.parent / "README.md").read_text(encoding="utf-8")
    recorded = dict(re.findall(r"^- ([a-z0-9 ]+): (\S+)$", readme, re.M))
    assert recorded["commit"] == helm.CHART["commit"]
    assert recorded["repository"] == helm.CHART["repository"]
    assert recorded["chart"] == helm.CHART["name"]
    assert recorded["chart version"] == helm.CHART["version"]
    assert recorded["source"] == (
        f"https://github.com/{helm.CHART['repository']}/blob/{helm.CHART['commit']}/"
        f"{helm.CHART['path']}"
    )
    assert recorded["sha256"] == hashlib.sha256(helm.SCHEMA_FILE.read_bytes()).hexdigest()
    assert helm.CHART["version"] in helm.SCHEMA_FILE.name
    assert re.fullmatch(r"[0-9a-f]{40}", helm.CHART["commit"])


def test_the_vendored_schema_is_a_valid_draft_2020_12_schema():
    from jsonschema import Draft202012Validator

    schema = helm.chart_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "modelSpec" in schema["properties"]["servingEngineSpec"]["properties"]


# The golden stacks export and validate


@pytest.mark.parametrize("golden", GPU_GOLDENS)
def test_every_gpu_golden_stack_exports_to_values_the_chart_schema_takes(tmp_path, golden):
    result = export(stack_dir(tmp_path / golden, golden))
    assert helm.validate(result.values) == []
    text = helm.to_yaml(result, "settings.json")
    assert yaml.safe_load(text) == result.values


def test_the_goldens_include_the_default_and_tensor_parallel_stacks():
    assert {"gpu-default", "gpu-tp2"} <= set(GPU_GOLDENS)


def test_the_cli_prints_the_values_and_exits_0(tmp_path, capsys):
    root = stack_dir(tmp_path / "s")
    assert main(["export", "helm", "--stack-dir", str(root)]) == ExitCode.OK
    out = capsys.readouterr().out
    values = yaml.safe_load(out)
    assert helm.validate(values) == []
    assert out.startswith("# Values for the Helm chart vllm-stack 0.1.12")


def test_output_file_gets_the_values_and_stdout_a_summary(tmp_path, capsys):
    root = stack_dir(tmp_path / "s")
    target = tmp_path / "values.yaml"
    code = main(["export", "helm", "--stack-dir", str(root), "--output", str(target)])
    assert code == ExitCode.OK
    assert helm.validate(yaml.safe_load(target.read_text())) == []
    out = capsys.readouterr().out
    assert f"wrote {target}" in out and "kubectl create secret generic" in out


# What maps to what


def test_model_image_and_served_name(tmp_path):
    entry = model_spec(export(stack_dir(tmp_path)).values)
    assert entry["modelURL"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert (entry["repository"], entry["tag"]) == ("vllm/vllm-openai", "v0.32.0")
    extra = entry["vllmConfig"]["extraArgs"]
    assert extra[extra.index("--served-model-name") + 1] == "deepseek-r1-distill-qwen-1.5b"
    # The chart names Services after the entry: an RFC 1035 label.
    assert entry["name"] == "deepseek-r1-distill-qwen-1-5b"


def test_model_revision_when_the_stack_pins_one(tmp_path):
    root = stack_dir(tmp_path, model__revision="abc123")
    assert model_spec(export(root).values)["modelRevision"] == "abc123"
    plain = stack_dir(tmp_path / "plain")
    assert "modelRevision" not in model_spec(export(plain).values)


def test_context_memory_and_parallelism_go_to_vllm_config(tmp_path):
    config = model_spec(export(stack_dir(tmp_path, "gpu-tp2")).values)["vllmConfig"]
    assert config["maxModelLen"] == 32768
    assert config["gpuMemoryUtilization"] == 0.9
    assert config["tensorParallelSize"] == 2
    assert config["enablePrefixCaching"] is True
    # Flags the chart writes from vllmConfig are not repeated in extraArgs.
    for flag in ("--max-model-len", "--gpu-memory-utilization", "--tensor-parallel-size"):
        assert flag not in config["extraArgs"]


def test_gpus_per_replica_are_the_tensor_parallel_size(tmp_path):
    assert model_spec(export(stack_dir(tmp_path / "a", "gpu-tp2")).values)["requestGPU"] == 2
    assert model_spec(export(stack_dir(tmp_path / "b")).values)["requestGPU"] == 1


def test_max_num_seqs_and_inventory_extra_args(tmp_path):
    settings = json.loads((GOLDEN / "gpu-default" / "settings.json").read_text())
    args = [*settings["vllm"]["args"], "--max-num-seqs", "64", "--enable-chunked-prefill"]
    config = model_spec(export(stack_dir(tmp_path, vllm__args=args)).values)["vllmConfig"]
    assert config["maxNumSeqs"] == 64
    assert config["extraArgs"][-1] == "--enable-chunked-prefill"
    assert "--max-num-seqs" not in config["extraArgs"]


def test_tool_calling_and_reasoning_flags_are_extra_args(tmp_path):
    extra = model_spec(export(stack_dir(tmp_path)).values)["vllmConfig"]["extraArgs"]
    assert "--enable-auto-tool-choice" in extra
    assert extra[extra.index("--tool-call-parser") + 1] == "hermes"
    assert extra[extra.index("--reasoning-parser") + 1] == "deepseek_r1"
    assert extra[extra.index("--generation-config") + 1] == "auto"


def test_the_chat_template_travels_as_the_charts_configmap(tmp_path):
    root = stack_dir(tmp_path)
    entry = model_spec(export(root).values)
    assert entry["chatTemplate"] == "chat_template.jinja"
    assert entry["chatTemplateConfigMap"] == (root / "chat_template.jinja").read_text()
    assert "--chat-template" not in entry["vllmConfig"]["extraArgs"]
    assert set(helm.UNSCHEMED_KEYS) <= set(entry)


def test_a_missing_chat_template_file_cannot_run(tmp_path, capsys):
    root = stack_dir(tmp_path)
    (root / "chat_template.jinja").unlink()
    assert main(["export", "helm", "--stack-dir", str(root)]) == ExitCode.CANNOT_RUN
    assert "chat_template.jinja" in capsys.readouterr().err


def test_one_replica_by_default_the_stacks_count_or_the_flag(tmp_path):
    assert model_spec(export(stack_dir(tmp_path / "a")).values)["replicaCount"] == 1
    root = stack_dir(tmp_path / "b", vllm__replicas=3)
    assert model_spec(export(root).values)["replicaCount"] == 3
    assert model_spec(export(root, replicas=2).values)["replicaCount"] == 2


def test_the_api_key_is_a_reference_to_a_kubernetes_secret(tmp_path):
    result = export(stack_dir(tmp_path), secret_name="my-creds")
    ref = {"secretName": "my-creds", "secretKey": "vllm-api-key"}
    assert result.values["servingEngineSpec"]["vllmApiKey"] == ref
    assert result.values["routerSpec"]["vllmApiKey"] == ref
    assert result.secret_keys["vllm-api-key"] == "VLLM_API_KEY"
    assert "kubectl create secret generic my-creds" in helm.to_yaml(result, "s")


def test_the_hf_token_is_referred_to_only_when_the_stack_has_one(tmp_path):
    with_token = model_spec(export(stack_dir(tmp_path / "a")).values)
    assert with_token["hf_token"] == {"secretName": "r1deploy-credentials", "secretKey": "hf-token"}
    without = {k: v for k, v in SECRETS.items() if k != "HF_TOKEN"}
    assert "hf_token" not in model_spec(export(stack_dir(tmp_path / "b", env=without)).values)


def test_the_router_routes_by_prefix_and_the_output_says_so(tmp_path):
    result = export(stack_dir(tmp_path))
    assert result.values["routerSpec"]["routingLogic"] == "prefixaware"
    assert "routingLogic prefixaware" in helm.to_yaml(result, "s")


def test_a_chart_without_prefix_aware_routing_gets_round_robin():
    schema = copy.deepcopy(helm.chart_schema())
    schema["properties"]["routerSpec"]["properties"]["routingLogic"]["enum"].remove("prefixaware")
    assert helm.routing_logic(schema)[0] == "roundrobin"


def test_an_air_gapped_stack_says_the_pods_fetch_from_the_hub(tmp_path):
    result = export(stack_dir(tmp_path, "air-gapped"))
    assert model_spec(result.values)["modelURL"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert any("HF_HUB_OFFLINE" in note for note in result.notes)


# Refusals


def test_a_negative_replica_count_is_refused_naming_the_path(tmp_path, capsys):
    root = stack_dir(tmp_path)
    target = tmp_path / "values.yaml"
    code = main(["export", "helm", "--stack-dir", str(root), "--replicas", "-1", "-o", str(target)])
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED
    assert "/servingEngineSpec/modelSpec/0/replicaCount" in err
    assert "-1 is less than the minimum of 1" in err
    assert not target.exists()


def test_a_value_the_vendored_chart_schema_refuses_names_the_path_and_schema(tmp_path):
    values = export(stack_dir(tmp_path)).values
    values["routerSpec"]["routingLogic"] = "fastest"
    model_spec(values)["vllmConfig"]["maxModelLen"] = "long"
    problems = helm.validate(values)
    pointers = {p.pointer: p for p in problems}
    assert "/routerSpec/routingLogic" in pointers
    assert "'fastest' is not one of" in pointers["/routerSpec/routingLogic"].message
    assert "/servingEngineSpec/modelSpec/0/vllmConfig/maxModelLen" in pointers
    assert all("chart schema vllm-stack 0.1.12" in p.schema for p in problems[:2])


def test_a_cpu_stack_is_refused(tmp_path, capsys):
    root = stack_dir(tmp_path, "cpu")
    assert main(["export", "helm", "--stack-dir", str(root)]) == ExitCode.FAILED
    assert "profile is 'cpu'" in capsys.readouterr().err


def test_another_stack_file_in_the_vllm_args_is_refused(tmp_path):
    settings = json.loads((GOLDEN / "gpu-default" / "settings.json").read_text())
    args = [*settings["vllm"]["args"], "--lora-modules", "x=/stack/lora"]
    with pytest.raises(helm.ExportError, match="names a file of the stack directory"):
        export(stack_dir(tmp_path, vllm__args=args))


def test_an_image_from_a_registry_with_a_port_keeps_its_tag_and_a_digest_is_refused(tmp_path):
    root = stack_dir(tmp_path / "a", images__vllm="registry.local:5000/vllm/vllm-openai:v0.32.0")
    entry = model_spec(export(root).values)
    assert (entry["repository"], entry["tag"]) == (
        "registry.local:5000/vllm/vllm-openai",
        "v0.32.0",
    )
    root = stack_dir(tmp_path / "b", images__vllm="vllm/vllm-openai@sha256:" + "0" * 64)
    with pytest.raises(helm.ExportError, match="pinned by digest"):
        export(root)


def test_no_stack_dir_or_no_settings_cannot_run(tmp_path, capsys):
    assert main(["export", "helm"]) == ExitCode.CANNOT_RUN
    assert main(["export", "helm", "--stack-dir", str(tmp_path)]) == ExitCode.CANNOT_RUN
    assert "settings.json does not exist" in capsys.readouterr().err


# Nothing secret


@pytest.mark.parametrize("golden", GPU_GOLDENS)
def test_no_secret_of_the_stack_reaches_the_output(tmp_path, golden, capsys):
    root = stack_dir(tmp_path / golden, golden)
    target = tmp_path / "values.yaml"
    assert main(["export", "helm", "--stack-dir", str(root)]) == ExitCode.OK
    assert main(["export", "helm", "--stack-dir", str(root), "-o", str(target)]) == 0
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, target.read_text()):
        for name, value in SECRETS.items():
            assert value not in text, f"{name}'s value is in the output"
