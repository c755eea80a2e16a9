"""`r1deploy export helm`: a stack as values for vLLM production-stack's Helm chart.

The input is the rendered stack directory (its ``settings.json``, plus the chat template
file it names and which secrets its ``.env`` holds), as for every other command that reads
a deployed or rendered stack (smoke, bench, doctor, reconcile): the role has already
resolved the inventory there (``max_model_len: auto`` sized, extra args appended, the image
pinned), and Python keeps no second copy of the role's defaults (docs/stack-dir.md).
``vllm.args`` is the exact vLLM argument list the compose file runs, so the export starts
from it: the flags the chart has a field for go to that field, every other flag goes to
``vllmConfig.extraArgs`` verbatim, so a pod gets the same server as the compose service.

Secrets never enter the values: the API key (and the Hugging Face token, when the stack
has one) are references to a Kubernetes Secret whose name and keys the output states; the
values come from the stack's ``.env`` when someone creates that Secret.

The values are validated against the chart's published ``values.schema.json`` (vendored
at a pinned chart version, schemas/README.md), then against what the chart's templates
require that its schema does not say (``REQUIRED_BY_TEMPLATES``). Nothing here talks to
Kubernetes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from r1deploy.diagnostics import json_pointer
from r1deploy.stackdir import StackDir, StackDirError

CHART = {
    "name": "vllm-stack",
    "version": "0.1.12",
    "repository": "vllm-project/production-stack",
    "commit": "a6c01db05f65f556235413ba8dbcfb0c01132fff",
    "path": "helm/values.schema.json",
}
SCHEMA_FILE = (
    Path(__file__).parent / "schemas" / f"production-stack-{CHART['name']}-"
    f"{CHART['version']}.values.schema.json"
)

# What the chart's templates need that its schema leaves open (deployment-vllm-multi.yaml:
# `required` on repository, tag, requestCPU, requestMemory; a Deployment's replicas must
# not be negative, and the pod must get at least one GPU for the vLLM image to run).
REQUIRED_BY_TEMPLATES = {
    "type": "object",
    "properties": {
        "servingEngineSpec": {
            "type": "object",
            "properties": {
                "modelSpec": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": [
                            "name",
                            "repository",
                            "tag",
                            "modelURL",
                            "requestCPU",
                            "requestMemory",
                            "requestGPU",
                        ],
                        "properties": {
                            # Service names: "<release>-<name>-engine-service" (RFC 1035 label)
                            "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"},
                            "replicaCount": {"type": "integer", "minimum": 1},
                            "requestCPU": {"minimum": 1},
                            "requestGPU": {"type": "integer", "minimum": 1},
                            "vllmConfig": {
                                "type": "object",
                                "properties": {
                                    "gpuMemoryUtilization": {
                                        "type": "number",
                                        "exclusiveMinimum": 0,
                                        "maximum": 1,
                                    },
                                    "maxModelLen": {"minimum": 1},
                                    "maxNumSeqs": {"minimum": 1},
                                    "tensorParallelSize": {"minimum": 1},
                                },
                            },
                        },
                    },
                }
            },
            "required": ["modelSpec"],
        }
    },
    "required": ["servingEngineSpec"],
}

# Keys the chart's templates read (deployment-vllm-multi.yaml) that its schema does not
# list; the schema allows them (no additionalProperties: false on a modelSpec entry).
UNSCHEMED_KEYS = ("chatTemplate", "chatTemplateConfigMap")

# The Kubernetes Secret the values refer to, and its keys (never the values).
DEFAULT_SECRET_NAME = "r1deploy-credentials"
API_KEY_SECRET_KEY = "vllm-api-key"
HF_TOKEN_SECRET_KEY = "hf-token"

# vLLM flags the chart has a field for (vllmConfig or the model entry); the rest of
# vllm.args goes to vllmConfig.extraArgs as it is.
_VALUE_FLAGS = {
    "--max-model-len": ("vllmConfig", "maxModelLen", int),
    "--gpu-memory-utilization": ("vllmConfig", "gpuMemoryUtilization", float),
    "--tensor-parallel-size": ("vllmConfig", "tensorParallelSize", int),
    "--max-num-seqs": ("vllmConfig", "maxNumSeqs", int),
    "--dtype": ("vllmConfig", "dtype", str),
    "--revision": ("model", "modelRevision", str),
    "--chat-template": ("model", "chatTemplate", str),
}
_CONFIG_ORDER = (
    "maxModelLen",
    "gpuMemoryUtilization",
    "tensorParallelSize",
    "maxNumSeqs",
    "dtype",
    "enablePrefixCaching",
    "extraArgs",
)
_BOOL_FLAGS = {
    "--enable-prefix-caching": True,
    "--no-enable-prefix-caching": False,
}
# Flags the chart's template sets itself: a second one would conflict.
_CHART_OWNED = ("--host", "--port", "--model")
# Where the compose file mounts the stack directory; a pod has no such directory.
STACK_MOUNT = "/stack/"


class ExportError(ValueError):
    """The stack cannot be expressed as the chart's values (says what, and the way out)."""


@dataclass(frozen=True)
class Options:
    replicas: int | None = None  # None: the stack's vllm.replicas, else 1
    request_cpu: int = 4
    request_memory: str = "16Gi"
    pvc_storage: str | None = "10Gi"
    secret_name: str = DEFAULT_SECRET_NAME


@dataclass
class HelmExport:
    values: dict
    routing_logic: str
    routing_reason: str
    secret_name: str
    secret_keys: dict[str, str]  # Secret key -> the stack's .env variable holding its value
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """A value the schema refuses: its JSON pointer in the values, the message, which schema."""

    pointer: str
    message: str
    schema: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message} ({self.schema})"


@cache
def chart_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def chart_label() -> str:
    return f"{CHART['name']} {CHART['version']} of {CHART['repository']}@{CHART['commit'][:8]}"


def routing_logic(schema: dict | None = None) -> tuple[str, str]:
    """Prefix-aware routing when the chart offers it (requests that share a prefix, such as
    a conversation's history, reach the replica that has it cached), else round robin."""
    schema = schema or chart_schema()
    choices = (
        schema.get("properties", {})
        .get("routerSpec", {})
        .get("properties", {})
        .get("routingLogic", {})
        .get("enum", [])
    )
    if "prefixaware" in choices:
        return "prefixaware", "the chart supports prefix-aware routing"
    return "roundrobin", "the chart has no prefix-aware routing, so round robin"


def k8s_name(served_name: str) -> str:
    """The served model name as an RFC 1035 label (the chart names Services after it)."""
    name = re.sub(r"[^a-z0-9-]+", "-", served_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:40].rstrip("-")


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        raise ExportError(
            f"settings.json /images/vllm: {image} is pinned by digest; the chart runs "
            "repository:tag, so set r1_stack_vllm_image to a tag"
        )
    # The tag follows the last ':' after the last '/' (a registry may carry a port).
    head, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    return head, tag


def _map_args(args: list[str]) -> tuple[dict, dict, list[str]]:
    """vllm.args -> (vllmConfig fields, model-entry fields, extraArgs)."""
    config: dict = {}
    model: dict = {}
    extra: list[str] = []
    i = 0
    while i < len(args):
        token = str(args[i])
        flag, eq, inline = token.partition("=")
        if flag in _VALUE_FLAGS:
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = str(args[i])
            else:
                raise ExportError(f"settings.json /vllm/args: {flag} has no value")
            where, key, kind = _VALUE_FLAGS[flag]
            try:
                converted = kind(value)
            except ValueError:
                raise ExportError(
                    f"settings.json /vllm/args: {flag} {value!r} is not a {kind.__name__}"
                ) from None
            (config if where == "vllmConfig" else model)[key] = converted
        elif token in _BOOL_FLAGS:
            config["enablePrefixCaching"] = _BOOL_FLAGS[token]
        elif flag in _CHART_OWNED:
            raise ExportError(
                f"settings.json /vllm/args: {flag} is set by the chart itself; remove it "
                "from r1_stack_vllm_extra_args"
            )
        else:
            if STACK_MOUNT in token:
                raise ExportError(
                    f"settings.json /vllm/args: {token!r} names a file of the stack directory, "
                    "which a pod does not have; only --chat-template is carried (as a "
                    "ConfigMap). Remove it from r1_stack_vllm_extra_args, or add it to the "
                    "exported values yourself (modelSpec extraVolumes)"
                )
            extra.append(token)
        i += 1
    return config, model, extra


def build(stack: StackDir, options: Options | None = None) -> HelmExport:
    """The chart's values for this stack (not yet validated: see ``validate``)."""
    options = options or Options()
    profile = stack.setting("profile")
    if profile != "gpu":
        raise ExportError(
            f"{stack.path / 'settings.json'}: profile is {profile!r}; the chart runs vLLM's "
            "GPU image, so only a gpu-profile stack exports (render one with "
            "r1_stack_profile: gpu)"
        )
    model_id = stack.setting("model", "id")
    served_name = stack.setting("model", "served_name")
    args = [str(a) for a in stack.setting("vllm", "args")]
    repository, tag = _split_image(stack.setting("images", "vllm"))
    config, entry_fields, extra = _map_args(args)
    tp = int(config.get("tensorParallelSize", stack.setting("vllm", "tensor_parallel_size")))
    config["tensorParallelSize"] = tp  # also gives the pod a /dev/shm (the chart's shm volume)
    # The chart passes --no-enable-prefix-caching unless told; vLLM's own default is on,
    # and prefix-aware routing pays only with it.
    config.setdefault("enablePrefixCaching", True)
    if "modelRevision" not in entry_fields and stack.settings.get("model", {}).get("revision"):
        entry_fields["modelRevision"] = str(stack.settings["model"]["revision"])

    replicas = options.replicas
    if replicas is None:
        replicas = stack.settings.get("vllm", {}).get("replicas", 1)

    notes: list[str] = []
    entry: dict = {
        "name": k8s_name(served_name),
        "repository": repository,
        "tag": tag,
        "modelURL": model_id,
    }
    if "modelRevision" in entry_fields:
        entry["modelRevision"] = entry_fields["modelRevision"]
    entry |= {
        "replicaCount": replicas,
        "requestCPU": options.request_cpu,
        "requestMemory": options.request_memory,
        "requestGPU": tp,
    }
    if options.pvc_storage:
        entry["pvcStorage"] = options.pvc_storage
        if isinstance(replicas, int) and replicas > 1:
            notes.append(
                f"pvcStorage is one claim ({options.pvc_storage}) for all {replicas} replicas: "
                "with ReadWriteOnce they must share a node; use a ReadWriteMany class "
                "(modelSpec pvcAccessMode) or --pvc-storage none"
            )
    config["extraArgs"] = extra
    entry["vllmConfig"] = {k: config[k] for k in _CONFIG_ORDER if k in config}

    if "chatTemplate" in entry_fields:
        template_path = entry_fields["chatTemplate"]
        if not template_path.startswith(STACK_MOUNT):
            raise ExportError(
                f"settings.json /vllm/args: --chat-template {template_path} is not a file of "
                "the stack directory; the export carries only those (as a ConfigMap)"
            )
        relative = template_path[len(STACK_MOUNT) :]
        template_file = stack.path / relative
        try:
            template = template_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise StackDirError(
                f"{template_file}: cannot read the chat template ({exc.strerror}); render the "
                "stack again"
            ) from None
        # The chart mounts the ConfigMap at /templates and passes --chat-template
        # /templates/<chatTemplate>.
        entry["chatTemplate"] = Path(relative).name
        entry["chatTemplateConfigMap"] = template

    secret_keys = {API_KEY_SECRET_KEY: "VLLM_API_KEY"}
    api_key_ref = {"secretName": options.secret_name, "secretKey": API_KEY_SECRET_KEY}
    if stack.env.get("HF_TOKEN"):
        entry["hf_token"] = {"secretName": options.secret_name, "secretKey": HF_TOKEN_SECRET_KEY}
        secret_keys[HF_TOKEN_SECRET_KEY] = "HF_TOKEN"

    if stack.settings.get("air_gapped") or stack.settings.get("model", {}).get("source") == (
        "local"
    ):
        notes.append(
            f"the stack loads a pre-seeded local copy ({stack.settings['model'].get('path')}); "
            f"the pods fetch {model_id} from the hub into pvcStorage instead: give them the "
            "hub, or seed the claim and add HF_HUB_OFFLINE=1 to modelSpec env"
        )

    logic, reason = routing_logic()
    values = {
        "servingEngineSpec": {
            "enableEngine": True,
            "vllmApiKey": api_key_ref,
            "modelSpec": [entry],
        },
        "routerSpec": {
            "enableRouter": True,
            "routingLogic": logic,
            "vllmApiKey": dict(api_key_ref),
        },
    }
    return HelmExport(values, logic, reason, options.secret_name, secret_keys, notes)


def validate(values: dict, schema: dict | None = None) -> list[Problem]:
    """Problems of ``values`` against the chart's schema, then against what its templates
    require (REQUIRED_BY_TEMPLATES); empty when the chart takes them."""
    found: list[Problem] = []
    checks = [
        (schema or chart_schema(), f"chart schema {chart_label()}"),
        (REQUIRED_BY_TEMPLATES, "chart templates, checked by r1deploy"),
    ]
    for checked_schema, name in checks:
        validator = Draft202012Validator(checked_schema)
        for error in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
            found.append(Problem(json_pointer(error.absolute_path), error.message, name))
    return found


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    # Multi-line text (the chat template) as a literal block, the way people write it.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def secret_command(export: HelmExport) -> str:
    """How to create the Secret the values refer to, values read from the stack's .env."""
    literals = " ".join(f'--from-literal={key}="${env}"' for key, env in export.secret_keys.items())
    return f"kubectl create secret generic {export.secret_name} {literals}"


def to_yaml(export: HelmExport, source: str) -> str:
    """The values as YAML, headed by comments: the chart, the Secret to create, the routing
    choice and what the stack has that the values do not carry."""
    envs = ", ".join(export.secret_keys.values())
    header = [
        f"Values for the Helm chart {chart_label()},",
        f"made by `r1deploy export helm` from {source};",
        "validated against the chart's values.schema.json.",
        f"Secret: create {export.secret_name} before installing, with the values of {envs}",
        "from the stack's .env (set them in your shell first; never commit them):",
        f"  {secret_command(export)}",
        f"Router: routingLogic {export.routing_logic}: {export.routing_reason}.",
        "Not exported: Open WebUI, the tool gateway, the front door (TLS, application keys,",
        "limits) and monitoring; the chart's router is the cluster's entry point.",
        *export.notes,
    ]
    body = yaml.dump(export.values, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return "".join(f"# {line}\n" for line in header) + body
