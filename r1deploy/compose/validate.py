"""Validate an r1deploy compose file: the Compose specification, then this stack's rules.

The schema is the Compose specification's JSON schema as vendored by check-jsonschema
(``vendor.compose-spec``). The semantic rules encode what makes this stack work:
pinned images, complete GPU reservations, Open WebUI wired to the model server, vLLM
flags that fit the model, no secrets in the file, and no model API on a public address
unless that was asked for. Every finding is a :class:`~r1deploy.diagnostics.Diagnostic`
with a JSON pointer, the line, what is wrong and the fix.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from r1deploy.compose.interpolation import MissingVariable, interpolate
from r1deploy.compose.source import YamlSource, YamlSyntaxError, load_yaml
from r1deploy.diagnostics import Diagnostic, errors, json_pointer
from r1deploy.inputfile import InputRefused, read_text
from r1deploy.stackdir import parse_env

# What the served model allows (config.json of DeepSeek-R1-Distill-Qwen-1.5B).
MODEL_ATTENTION_HEADS = 12
MODEL_MAX_LEN = 131072
MODEL_NAMES = ("deepseek-r1-distill-qwen-1.5b",)

VLLM_DEFAULT_PORT = 8000
LLAMACPP_DEFAULT_PORT = 8080
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
UNPINNED_TAGS = frozenset({"latest", "main", "nightly", "master", "dev"})
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
SECRET_ARGS = frozenset({"--api-key", "--hf-token"})
HF_TOKEN_LITERAL = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
# A value that is only an interpolation: ${NAME}, ${NAME:?msg}, ${NAME:-default}, $NAME.
INTERPOLATION = re.compile(
    r"^\$(\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)$"
)
CDI_NAME = re.compile(r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+=[a-zA-Z0-9:._-]+$")

# Open WebUI environment names that guides use but Open WebUI does not read.
WEBUI_WRONG_ENV = {
    "OPENAI_BASE_URL": "OPENAI_API_BASE_URL",
    "OPENAI_API_BASE": "OPENAI_API_BASE_URL",
    "OPENAI_API_URL": "OPENAI_API_BASE_URL",
    "OPENAI_URL": "OPENAI_API_BASE_URL",
    "OPENAI_KEY": "OPENAI_API_KEY",
    "OPENAI_API_TOKEN": "OPENAI_API_KEY",
    "WEBUI_SECRET": "WEBUI_SECRET_KEY",
    "ENABLE_SIGN_UP": "ENABLE_SIGNUP",
    "WEBUI_ENABLE_SIGNUP": "ENABLE_SIGNUP",
    "ENABLE_OLLAMA": "ENABLE_OLLAMA_API",
    "OLLAMA_API_ENABLED": "ENABLE_OLLAMA_API",
    "WEBUI_ADMIN_USER": "WEBUI_ADMIN_EMAIL",
    "WEBUI_ADMIN_PASS": "WEBUI_ADMIN_PASSWORD",
    "TOOL_SERVERS": "TOOL_SERVER_CONNECTIONS",
    "TOOL_SERVER_CONNECTION": "TOOL_SERVER_CONNECTIONS",
}
# Names this stack sets, for "did you mean" on near misses.
WEBUI_KNOWN_ENV = (
    "OPENAI_API_BASE_URL",
    "OPENAI_API_BASE_URLS",
    "OPENAI_API_KEY",
    "OPENAI_API_KEYS",
    "WEBUI_SECRET_KEY",
    "ENABLE_OLLAMA_API",
    "ENABLE_SIGNUP",
    "WEBUI_ADMIN_EMAIL",
    "WEBUI_ADMIN_PASSWORD",
    "WEBUI_ADMIN_NAME",
    "TOOL_SERVER_CONNECTIONS",
    "DEFAULT_MODELS",
    "OFFLINE_MODE",
    "HF_HUB_OFFLINE",
    "ENABLE_OPENAI_API",
    "WEBUI_NAME",
    "WEBUI_URL",
)


@cache
def compose_schema() -> dict:
    """The Compose specification schema that check-jsonschema vendors and maintains."""
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


@cache
def _schema_validator() -> Draft202012Validator:
    return Draft202012Validator(compose_schema())


@dataclass
class Report:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not errors(self.diagnostics)

    def to_dict(self) -> dict:
        found = self.diagnostics
        return {
            "valid": self.valid,
            "files": [self.path],
            "errors": len(errors(found)),
            "warnings": len(found) - len(errors(found)),
            "diagnostics": [d.to_dict() for d in found],
        }


class _Findings:
    """Collects diagnostics for one file, placing each pointer on its line."""

    def __init__(self, path: str, source: YamlSource):
        self.path, self.source, self.items = path, source, []

    def add(
        self, path: tuple, rule: str, message: str, fix: str, *, severity="error", key=False
    ) -> None:
        pointer = json_pointer(path)
        line, column = self.source.position(pointer, key=key)
        self.items.append(
            Diagnostic(self.path, pointer, rule, message, fix, severity, line, column)
        )


# --- reading the parts of a service ------------------------------------------------------


def _environment(service: dict) -> dict[str, tuple[object, tuple]]:
    """Environment as name -> (value, path relative to the service), list or map form."""
    env = service.get("environment")
    found: dict[str, tuple[object, tuple]] = {}
    if isinstance(env, dict):
        for name, value in env.items():
            found[str(name)] = (value, ("environment", name))
    elif isinstance(env, list):
        for index, item in enumerate(env):
            name, _, value = str(item).partition("=")
            found[name] = (value if "=" in str(item) else None, ("environment", index))
    return found


def _argv(service: dict, key: str = "command") -> list[tuple[str, tuple]]:
    """Arguments of command (or entrypoint) with their paths; a string is split like a shell."""
    value = service.get(key)
    if isinstance(value, list):
        return [(str(arg), (key, index)) for index, arg in enumerate(value)]
    if isinstance(value, str):
        try:
            return [(arg, (key,)) for arg in shlex.split(value)]
        except ValueError:
            return [(value, (key,))]
    return []


def _options(argv: list[tuple[str, tuple]]) -> dict[str, tuple[str | None, tuple]]:
    """--flag value / --flag=value / bare --flag, as flag -> (value or None, path)."""
    options: dict[str, tuple[str | None, tuple]] = {}
    index = 0
    while index < len(argv):
        arg, path = argv[index]
        if arg.startswith("-"):
            name, equals, value = arg.partition("=")
            if equals:
                options[name] = (value, path)
            elif index + 1 < len(argv) and not argv[index + 1][0].startswith("-"):
                options[name] = (argv[index + 1][0], argv[index + 1][1])
                index += 1
            else:
                options[name] = (None, path)
        index += 1
    return options


def _image_name(service: dict) -> str:
    image = service.get("image")
    return image.lower() if isinstance(image, str) else ""


def _is_vllm(service: dict) -> bool:
    """vLLM by its image, or by what the service runs whatever the image is called:
    ``vllm serve``, ``python -m vllm.entrypoints.openai.api_server``."""
    if "vllm-openai" in _image_name(service):
        return True
    argv = [arg for arg, _ in _argv(service, "entrypoint")] + [arg for arg, _ in _argv(service)]
    return any(arg == "vllm" or arg.endswith("/vllm") or arg.startswith("vllm.entrypoints")
               for arg in argv)


def _is_llamacpp(service: dict) -> bool:
    image = _image_name(service)
    return "llama.cpp" in image or "llama-server" in image or "llama-cpp" in image


def _is_webui(service: dict) -> bool:
    return "open-webui" in _image_name(service)


def _listen_port(service: dict) -> int | None:
    """The port a model server listens on inside its container."""
    option = _options(_argv(service)).get("--port")
    if option and option[0] and option[0].isdigit():
        return int(option[0])
    if _is_llamacpp(service):
        env = _environment(service).get("LLAMA_ARG_PORT")
        if env and str(env[0]).isdigit():
            return int(env[0])
        return LLAMACPP_DEFAULT_PORT
    return VLLM_DEFAULT_PORT


def _is_interpolation(value: object) -> bool:
    return isinstance(value, str) and bool(INTERPOLATION.match(value.strip()))


def _parse_port(entry: object, env: dict | None = None
                ) -> tuple[str | None, str | None, str] | None:
    """(host_ip, published, target) of a ports entry in short or long syntax, with Compose's
    interpolation filled from the .env beside the file (``${HOST:-0.0.0.0}:8000:8000``)."""
    if env is not None:
        if isinstance(entry, dict):
            entry = {k: interpolate(v, env) if isinstance(v, str) else v for k, v in entry.items()}
        elif isinstance(entry, str):
            entry = interpolate(entry, env)
    if isinstance(entry, dict):
        published = entry.get("published")
        return (
            entry.get("host_ip"),
            None if published is None else str(published),
            str(entry.get("target")),
        )
    text = str(entry).split("/", 1)[0]
    if text.startswith("["):  # [::1]:8000:8000
        address, _, rest = text[1:].partition("]:")
        published, _, target = rest.rpartition(":")
        return address, published or None, target
    parts = text.split(":")
    if len(parts) == 1:
        return None, None, parts[0]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _parse_len(text: str) -> int | None:
    """vLLM's --max-model-len: an integer, or with a k/K/m/M suffix."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if not match:
        return None
    number, suffix = float(match.group(1)), match.group(2)
    factor = {"": 1, "k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2}[suffix]
    return int(number * factor)


# --- the rules ------------------------------------------------------------------------------


def _declared_keys(schema: dict, depth: int = 0) -> tuple[set[str], set[str]]:
    """Property names and patterns a (sub)schema declares, through allOf/anyOf/oneOf/$ref."""
    names = set(schema.get("properties", {}))
    patterns = set(schema.get("patternProperties", {}))
    if depth > 8:
        return names, patterns
    parts = [p for key in ("allOf", "anyOf", "oneOf") for p in schema.get(key, [])]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        parts.append(compose_schema()["$defs"].get(ref.removeprefix("#/$defs/"), {}))
    for part in parts:
        if isinstance(part, dict):
            more_names, more_patterns = _declared_keys(part, depth + 1)
            names |= more_names
            patterns |= more_patterns
    return names, patterns


def _check_schema(document: object, found: _Findings) -> None:
    for error in sorted(
        _schema_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))
    ):
        path = tuple(error.absolute_path)
        if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(
            error.instance, dict
        ):
            # Only keys the schema does not declare: with unevaluatedProperties, an error
            # inside a declared key also marks it "unevaluated", a cascade already reported.
            declared, pattern_texts = _declared_keys(error.schema)
            allowed = sorted(declared)
            patterns = [re.compile(p) for p in pattern_texts]
            unknown = [
                k
                for k in error.instance
                if k not in allowed and not any(p.search(str(k)) for p in patterns)
            ]
            for key in sorted(unknown):
                close = difflib.get_close_matches(str(key), allowed, n=1)
                fix = (
                    f'did you mean "{close[0]}"? Rename the key'
                    if close
                    else "remove it (see https://docs.docker.com/reference/compose-file/)"
                )
                found.add(
                    path + (key,),
                    "compose-schema",
                    f'"{key}" is not a Compose key here',
                    fix,
                    key=True,
                )
            continue
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        found.add(
            path,
            "compose-schema",
            f"not valid Compose: {message}",
            "correct it as the Compose specification says: "
            "https://docs.docker.com/reference/compose-file/",
        )


def _check_images(services: dict, found: _Findings) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            if "build" not in service:
                found.add(
                    ("services", name),
                    "image-pinned",
                    f"service {name} has neither image nor build",
                    "give it a pinned image (name:version) or a build section",
                )
            continue
        if not isinstance(image, str) or "$" in image:
            continue
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else None
        if tag is None:
            found.add(
                ("services", name, "image"),
                "image-pinned",
                f"image {image} of service {name} has no tag, so it floats to latest",
                f"pin a version: {image}:<version> (or a @sha256: digest)",
            )
        elif tag.lower() in UNPINNED_TAGS:
            found.add(
                ("services", name, "image"),
                "image-pinned",
                f"image {image} of service {name} is not pinned: '{tag}' moves",
                f"pin a version tag or digest instead of '{tag}'",
            )


def _gpu_reservations(service: dict) -> list[tuple[dict, tuple]]:
    devices = (
        ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    ).get("devices")
    if not isinstance(devices, list):
        return []
    base = ("deploy", "resources", "reservations", "devices")
    return [(d, base + (i,)) for i, d in enumerate(devices) if isinstance(d, dict)]


def _check_gpu(services: dict, found: _Findings) -> None:
    for name, service in services.items():
        reserved: int | None = 0  # GPUs reserved; None = all of them
        for device, path in _gpu_reservations(service):
            where = ("services", name) + path
            driver = device.get("driver", "nvidia")
            capabilities = device.get("capabilities") or []
            if driver == "cdi":
                if "count" in device:
                    found.add(
                        where + ("count",),
                        "gpu-reservation",
                        f"service {name}: a CDI device request takes device_ids, not count",
                        "remove count and list CDI names, e.g. device_ids: [nvidia.com/gpu=all]",
                    )
                ids = device.get("device_ids") or []
                bad = [i for i in ids if not CDI_NAME.match(str(i))]
                if not ids or bad:
                    found.add(
                        where + ("device_ids",),
                        "gpu-reservation",
                        f"service {name}: CDI device_ids must be fully qualified CDI names, "
                        f"got {ids}",
                        "use names like nvidia.com/gpu=0 or nvidia.com/gpu=all "
                        "(nvidia-ctk cdi list shows them)",
                    )
                else:
                    reserved = (
                        None
                        if any(str(i).endswith("=all") for i in ids)
                        else (reserved or 0) + len(ids)
                    )
                continue
            if driver != "nvidia":
                continue
            if "gpu" not in capabilities:
                found.add(
                    where + ("capabilities",),
                    "gpu-reservation",
                    f"service {name}: the GPU reservation lacks capabilities [gpu]; "
                    "Docker then selects no GPU",
                    "add capabilities: [gpu] to the device request",
                )
            if "count" in device and "device_ids" in device:
                found.add(
                    where,
                    "gpu-reservation",
                    f"service {name}: count and device_ids are mutually exclusive",
                    "keep device_ids to pin GPUs, or count to take any N",
                )
                continue
            count = device.get("count")
            if "device_ids" in device:
                ids = device.get("device_ids") or []
                if not ids:
                    found.add(
                        where + ("device_ids",),
                        "gpu-reservation",
                        f"service {name}: device_ids is empty",
                        "list the GPU ids (nvidia-smi -L)",
                    )
                reserved = None if reserved is None else reserved + len(ids)
            elif count is None or count == "all":
                reserved = None
            elif isinstance(count, int) and count > 0:
                reserved = None if reserved is None else reserved + count
            elif not (isinstance(count, str) and "$" in count):
                found.add(
                    where + ("count",),
                    "gpu-reservation",
                    f"service {name}: GPU count {count!r} is neither a positive number nor 'all'",
                    "set count to the number of GPUs vLLM uses (tensor parallel size) or 'all'",
                )
        if _is_vllm(service):
            _check_vllm_gpus(name, service, reserved, found)


def _check_vllm_gpus(name: str, service: dict, reserved: int | None, found: _Findings) -> None:
    has_other = (
        "gpus" in service
        or service.get("runtime") == "nvidia"
        or any(CDI_NAME.match(str(d)) for d in service.get("devices") or [])
    )
    if not _gpu_reservations(service) and not has_other:
        found.add(
            ("services", name),
            "gpu-reservation",
            f"service {name} runs vLLM but reserves no GPU",
            "add deploy.resources.reservations.devices: "
            "[{driver: nvidia, count: 1, capabilities: [gpu]}]",
        )
        return
    option = _options(_argv(service)).get("--tensor-parallel-size") or _options(_argv(service)).get(
        "-tp"
    )
    if option and option[0] and option[0].isdigit() and reserved is not None:
        tp = int(option[0])
        if reserved and reserved < tp:
            found.add(
                ("services", name) + option[1],
                "gpu-reservation",
                f"service {name}: tensor parallel size {tp} needs {tp} GPUs but only "
                f"{reserved} are reserved",
                f"reserve {tp} GPUs (count: {tp} or {tp} device_ids) or lower "
                "--tensor-parallel-size",
            )


def _check_vllm_flags(services: dict, found: _Findings) -> None:
    for name, service in services.items():
        if not _is_vllm(service):
            continue
        argv = _argv(service)
        options = _options(argv)
        model = next((arg for arg, _ in argv if not arg.startswith("-")), "")
        model = (options.get("--model") or (model, ()))[0] or ""
        known = model.rsplit("/", 1)[-1].lower() in MODEL_NAMES
        base = ("services", name)

        def at(flag: str, base=base, options=options) -> tuple:
            return base + options[flag][1]

        if "--enable-reasoning" in options:
            found.add(
                at("--enable-reasoning"),
                "vllm-flags",
                f"service {name}: --enable-reasoning was removed from vLLM and is rejected",
                "drop it; --reasoning-parser deepseek_r1 alone turns reasoning on",
            )
        tp_flag = "--tensor-parallel-size" if "--tensor-parallel-size" in options else "-tp"
        if tp_flag in options:
            text = options[tp_flag][0] or ""
            if not text.isdigit() or int(text) < 1:
                found.add(
                    at(tp_flag),
                    "vllm-flags",
                    f"service {name}: tensor parallel size {text!r} is not a positive integer",
                    "set --tensor-parallel-size to 1, 2, 3, 4, 6 or 12",
                )
            elif known and MODEL_ATTENTION_HEADS % int(text):
                found.add(
                    at(tp_flag),
                    "vllm-flags",
                    f"service {name}: tensor parallel size {text} does not divide the "
                    f"model's {MODEL_ATTENTION_HEADS} attention heads",
                    "set --tensor-parallel-size to 1, 2, 3, 4, 6 or 12",
                )
        if "--max-model-len" in options:
            text = options["--max-model-len"][0] or ""
            length = _parse_len(text)
            if length is None or length < 1:
                found.add(
                    at("--max-model-len"),
                    "vllm-flags",
                    f"service {name}: --max-model-len {text!r} is not a positive number of tokens",
                    "set it to a number of tokens, e.g. 4096",
                )
            elif known and length > MODEL_MAX_LEN:
                found.add(
                    at("--max-model-len"),
                    "vllm-flags",
                    f"service {name}: --max-model-len {length} exceeds the model's "
                    f"{MODEL_MAX_LEN} tokens (max_position_embeddings)",
                    f"set it to at most {MODEL_MAX_LEN} (4096 is the product default)",
                )
        if "--gpu-memory-utilization" in options:
            text = options["--gpu-memory-utilization"][0] or ""
            try:
                share = float(text)
            except ValueError:
                share = None
            if share is None or not 0 < share <= 1:
                found.add(
                    at("--gpu-memory-utilization"),
                    "vllm-flags",
                    f"service {name}: --gpu-memory-utilization {text} is not in (0, 1]",
                    "set the share of GPU memory vLLM may use, e.g. 0.9",
                )
        auto, parser = "--enable-auto-tool-choice" in options, "--tool-call-parser" in options
        if auto and not parser:
            found.add(
                at("--enable-auto-tool-choice"),
                "vllm-flags",
                f"service {name}: --enable-auto-tool-choice without --tool-call-parser: "
                "vLLM refuses to start",
                "add --tool-call-parser hermes (the format the R1 tools template teaches)",
            )
        if parser and not auto:
            found.add(
                at("--tool-call-parser"),
                "vllm-flags",
                f"service {name}: --tool-call-parser without --enable-auto-tool-choice: "
                "tool calls in the model's text are never parsed",
                "add --enable-auto-tool-choice",
            )
        if auto and "--chat-template" not in options and known:
            found.add(
                at("--enable-auto-tool-choice"),
                "vllm-flags",
                f"service {name}: no --chat-template: the R1 distill's own template drops "
                "the request's tools, so function calling never triggers",
                "pass --chat-template with the shipped R1 tools template "
                "(compose/chat_template_r1_tools.jinja)",
                severity="warning",
            )
        if service.get("ipc") != "host" and "shm_size" not in service:
            found.add(
                base,
                "vllm-flags",
                f"service {name}: neither ipc: host nor shm_size; vLLM's workers run out "
                "of shared memory in the default 64 MB",
                "add ipc: host",
                severity="warning",
            )


def _check_webui(services: dict, found: _Findings) -> None:
    model_servers = {n for n, s in services.items() if _is_vllm(s) or _is_llamacpp(s)}
    for name, service in services.items():
        if not _is_webui(service):
            continue
        env = _environment(service)
        base = ("services", name)
        for variable, (_, path) in env.items():
            if variable in WEBUI_WRONG_ENV:
                right = WEBUI_WRONG_ENV[variable]
                found.add(
                    base + path,
                    "webui-env",
                    f"service {name}: Open WebUI does not read {variable}",
                    f"rename it to {right}",
                    key=isinstance(path[-1], str),
                )
            elif (
                variable.startswith(("OPENAI_", "WEBUI_", "ENABLE_"))
                and variable not in WEBUI_KNOWN_ENV
            ):
                close = difflib.get_close_matches(variable, WEBUI_KNOWN_ENV, n=1, cutoff=0.85)
                if close:
                    found.add(
                        base + path,
                        "webui-env",
                        f"service {name}: {variable} looks like a misspelling of {close[0]}",
                        f"rename it to {close[0]}",
                        severity="warning",
                        key=isinstance(path[-1], str),
                    )
        _check_webui_backend(name, service, env, services, model_servers, found)
        _check_webui_depends(name, service, services, model_servers, found)


def _check_webui_backend(name, service, env, services, model_servers, found) -> None:
    base = ("services", name)
    if "OPENAI_API_BASE_URL" in env:
        urls = [(str(env["OPENAI_API_BASE_URL"][0] or ""), env["OPENAI_API_BASE_URL"][1])]
    elif "OPENAI_API_BASE_URLS" in env:
        value, path = env["OPENAI_API_BASE_URLS"]
        urls = [(u.strip(), path) for u in str(value or "").split(";") if u.strip()]
    else:
        found.add(
            base,
            "webui-backend",
            f"service {name}: Open WebUI has no OPENAI_API_BASE_URL, so it has no model",
            f"set OPENAI_API_BASE_URL: http://{next(iter(sorted(model_servers)), 'vllm')}:8000/v1",
        )
        return
    for url, path in urls:
        if "$" in url:
            continue
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        where = base + path
        if host not in services:
            hint = ", ".join(sorted(model_servers)) or "none in this file"
            found.add(
                where,
                "webui-backend",
                f"service {name}: OPENAI_API_BASE_URL {url} points at '{host}', which is not "
                f"a service of this file (model servers: {hint})",
                "point it at the vLLM service by its service name, e.g. http://vllm:8000/v1",
            )
            continue
        if host in model_servers:
            expected = _listen_port(services[host])
            if port != expected:
                found.add(
                    where,
                    "webui-backend",
                    f"service {name}: OPENAI_API_BASE_URL {url} uses port {port} but "
                    f"{host} listens on {expected}",
                    f"use http://{host}:{expected}/v1 (the container port, not the published one)",
                )
        if parts.path.rstrip("/") != "/v1":
            found.add(
                where,
                "webui-backend",
                f"service {name}: OPENAI_API_BASE_URL {url} must end in /v1",
                f"use http://{host}:{port}/v1",
            )
    if "OPENAI_API_KEY" not in env and "OPENAI_API_KEYS" not in env:
        guarded = any(
            "VLLM_API_KEY" in _environment(services[s])
            or "--api-key" in _options(_argv(services[s]))
            or "LLAMA_API_KEY" in _environment(services[s])
            for s in model_servers
        )
        if guarded:
            found.add(
                base,
                "webui-backend",
                f"service {name}: the model server requires an API key but Open WebUI has "
                "no OPENAI_API_KEY, so every request gets 401",
                "set OPENAI_API_KEY: ${VLLM_API_KEY:?} (the same key, from .env)",
            )


def _check_webui_depends(name, service, services, model_servers, found) -> None:
    depends = service.get("depends_on") or {}
    for server in sorted(model_servers):
        condition = depends.get(server, {}).get("condition") if isinstance(depends, dict) else None
        if condition != "service_healthy":
            found.add(
                ("services", name, "depends_on"),
                "webui-depends",
                f"service {name}: Open WebUI does not wait for {server} to be healthy, so it "
                "starts with no model",
                f"add depends_on: {{{server}: {{condition: service_healthy}}}}",
                severity="warning",
            )
    if isinstance(depends, dict):
        for other, spec in depends.items():
            if (
                isinstance(spec, dict)
                and spec.get("condition") == "service_healthy"
                and other in services
                and "healthcheck" not in services[other]
            ):
                found.add(
                    ("services", name, "depends_on", other),
                    "webui-depends",
                    f"service {name} waits for {other} to be healthy but {other} has no "
                    "healthcheck: docker compose refuses to start",
                    f"give {other} a healthcheck (GET /health)",
                )


def _check_secrets(
    services: dict, text: str, env_secrets: dict[str, str], found: _Findings
) -> None:
    for name, service in services.items():
        base = ("services", name)
        for variable, (value, path) in _environment(service).items():
            if value in (None, "") or _is_interpolation(value):
                continue
            if SECRET_NAME.search(variable):
                found.add(
                    base + path,
                    "secret-literal",
                    f"service {name}: {variable} holds a literal secret in the compose file",
                    f"put it in .env as {variable}=... and write {variable}: "
                    f"${{{variable}:?}} here",
                )
            elif variable == "TOOL_SERVER_CONNECTIONS":
                _check_tool_server_keys(name, str(value), base + path, found)
        for flag, (value, path) in _options(_argv(service)).items():
            if flag in SECRET_ARGS and value and not _is_interpolation(value):
                found.add(
                    base + path,
                    "secret-literal",
                    f"service {name}: {flag} is given a literal secret",
                    "drop the flag and pass the key through the environment from .env "
                    "(VLLM_API_KEY: ${VLLM_API_KEY:?})",
                )
    for line_number, line in enumerate(text.splitlines(), start=1):
        if HF_TOKEN_LITERAL.search(line):
            found.items.append(
                Diagnostic(
                    found.path,
                    "",
                    "secret-literal",
                    "a Hugging Face token is written in the compose file",
                    "put it in .env as HF_TOKEN=... and refer to ${HF_TOKEN}",
                    "error",
                    line_number,
                    None,
                )
            )
        for key, secret in env_secrets.items():
            if len(secret) >= 8 and secret in line:
                found.items.append(
                    Diagnostic(
                        found.path,
                        "",
                        "secret-literal",
                        f"the value of {key} from .env is written in the compose file",
                        f"refer to it as ${{{key}:?}} instead of its value",
                        "error",
                        line_number,
                        None,
                    )
                )


def _check_tool_server_keys(name: str, value: str, path: tuple, found: _Findings) -> None:
    try:
        connections = json.loads(value)
    except json.JSONDecodeError as exc:
        found.add(
            path,
            "webui-env",
            f"service {name}: TOOL_SERVER_CONNECTIONS is not valid JSON ({exc.msg})",
            "write it as a JSON list of connections",
        )
        return
    for index, connection in enumerate(connections if isinstance(connections, list) else []):
        key = connection.get("key") if isinstance(connection, dict) else None
        if key and not _is_interpolation(key):
            found.add(
                path,
                "secret-literal",
                f"service {name}: TOOL_SERVER_CONNECTIONS[{index}].key is a literal secret",
                'write "key":"${TOOLS_GATEWAY_KEY:?}" and keep the key in .env',
            )


def _check_public(services: dict, env: dict, found: _Findings) -> None:
    """No model API beyond loopback: vLLM's key guards /v1/* only (/invocations runs a chat
    without it; /tokenize, /metrics, /docs answer anyone), so it is reached through Open
    WebUI, the compose network, or an SSH tunnel, never published."""
    for name, service in services.items():
        if not (_is_vllm(service) or _is_llamacpp(service)):
            continue
        fix = (f"publish it on loopback only (127.0.0.1:PORT:{_listen_port(service)}); "
               "clients on other hosts use Open WebUI, or an SSH tunnel to that port")
        if service.get("network_mode") == "host":
            found.add(
                ("services", name, "network_mode"),
                "public-port",
                f"service {name}: network_mode host exposes the model API on every interface "
                "(its key guards only /v1/*)",
                fix,
            )
        for index, entry in enumerate(service.get("ports") or []):
            try:
                parsed = _parse_port(entry, env)
            except MissingVariable:
                parsed = _parse_port(entry)  # an unset ${HOST?err}: the address is unknown
            if parsed is None:
                continue
            host_ip, published, target = parsed
            if host_ip in LOOPBACK:
                continue
            unknown = isinstance(host_ip, str) and "$" in host_ip
            where = (f"on {host_ip}, an address .env does not set" if unknown
                     else f"on {host_ip}" if host_ip else "on all interfaces")
            found.add(
                ("services", name, "ports", index),
                "public-port",
                f"service {name} publishes the model API (port {published or target}) "
                f"{where}: it would be reachable from the network, and vLLM's key guards only "
                "/v1/* (/invocations, /tokenize, /metrics, /docs answer without it)",
                fix,
            )


# --- entry points ---------------------------------------------------------------------------



def validate_text(
    text: str, path: str = "compose.yaml", env: dict[str, str] | None = None
) -> Report:
    """Check compose ``text``; ``env`` is the sibling .env, whose secrets must not leak."""
    report = Report(path)
    try:
        source = load_yaml(text)
    except YamlSyntaxError as exc:
        message = f"invalid YAML: {exc}" if exc.rule == "yaml-syntax" else str(exc)
        report.diagnostics.append(
            Diagnostic(path, "", exc.rule, message, exc.fix, "error", exc.line, exc.column)
        )
        return report
    found = _Findings(path, source)
    for pointer in source.duplicate_keys:
        line, column = source.position(pointer, key=True)
        found.items.append(
            Diagnostic(
                path,
                pointer,
                "duplicate-key",
                f"key {pointer.rsplit('/', 1)[-1]} appears twice",
                "keep one of them: docker compose refuses duplicate keys",
                "error",
                line,
                column,
            )
        )
    document = source.document
    _check_schema(document, found)
    services = document.get("services") if isinstance(document, dict) else None
    if isinstance(services, dict):
        services = {n: s for n, s in services.items() if isinstance(s, dict)}
        secrets = {k: v for k, v in (env or {}).items() if SECRET_NAME.search(k) and v}
        _check_images(services, found)
        _check_gpu(services, found)
        _check_vllm_flags(services, found)
        _check_webui(services, found)
        _check_secrets(services, text, secrets, found)
        _check_public(services, env or {}, found)
    report.diagnostics = found.items
    return report


def validate_file(path: str | Path) -> Report:
    """Check a compose file, with the .env next to it when there is one.

    Raises OSError when the file cannot be opened; a FIFO, a device, a file over
    MAX_INPUT_BYTES or one that is not UTF-8 is reported as a finding, and so is a
    .env that cannot be read as text.
    """
    path = Path(path)
    try:
        text = read_text(path)
    except InputRefused as exc:
        return Report(str(path), [exc.diagnostic(str(path))])
    env_file, env, unread = path.parent / ".env", {}, []
    if env_file.is_file():
        try:
            env = parse_env(read_text(env_file))
        except InputRefused as exc:
            # Without it the secret-literal rule cannot check anything.
            unread = [exc.diagnostic(str(env_file))]
    report = validate_text(text, str(path), env)
    report.diagnostics[:0] = unread
    return report


def iter_rules() -> Iterator[str]:
    """Rule ids, for documentation and tests."""
    yield from (
        "input-not-a-file",
        "input-too-large",
        "input-encoding",
        "yaml-syntax",
        "yaml-limit",
        "duplicate-key",
        "compose-schema",
        "image-pinned",
        "gpu-reservation",
        "vllm-flags",
        "webui-env",
        "webui-backend",
        "webui-depends",
        "secret-literal",
        "public-port",
    )
