"""Reading a compose file's services the way docker compose and the servers read them:
command arguments and flags, environment, image, ports, which server a service runs.

The rule modules (r1deploy/compose/rules/) ask these questions and judge the answers.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property

from r1deploy.compose.interpolation import interpolate

VLLM_DEFAULT_PORT = 8000
LLAMACPP_DEFAULT_PORT = 8080
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
# A value that is only an interpolation: ${NAME}, ${NAME:?msg}, ${NAME:-default}, $NAME.
INTERPOLATION = re.compile(
    r"^\$(\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)$"
)

Argv = list[tuple[str, tuple]]


@dataclass(frozen=True)
class ComposeFile:
    """What the rules look at: the parsed document, its text, the .env beside it."""

    document: object
    text: str
    env: dict[str, str] = field(default_factory=dict)

    @cached_property
    def services(self) -> dict[str, dict] | None:
        """The services that are mappings; None when the file has no services mapping."""
        services = self.document.get("services") if isinstance(self.document, dict) else None
        if not isinstance(services, dict):
            return None
        return {n: s for n, s in services.items() if isinstance(s, dict)}

    @cached_property
    def env_secrets(self) -> dict[str, str]:
        """The .env's values whose names say they are secrets."""
        return {k: v for k, v in self.env.items() if SECRET_NAME.search(k) and v}


def environment(service: dict) -> dict[str, tuple[object, tuple]]:
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


def argv(service: dict, key: str = "command") -> Argv:
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


def options(args: Argv) -> dict[str, tuple[str | None, tuple]]:
    """--flag value / --flag=value / bare --flag, as flag -> (value or None, path)."""
    found: dict[str, tuple[str | None, tuple]] = {}
    index = 0
    while index < len(args):
        arg, path = args[index]
        if arg.startswith("-"):
            name, equals, value = arg.partition("=")
            if equals:
                found[name] = (value, path)
            elif index + 1 < len(args) and not args[index + 1][0].startswith("-"):
                found[name] = (args[index + 1][0], args[index + 1][1])
                index += 1
            else:
                found[name] = (None, path)
        index += 1
    return found


def image_name(service: dict) -> str:
    image = service.get("image")
    return image.lower() if isinstance(image, str) else ""


def is_vllm(service: dict) -> bool:
    """vLLM by its image, or by what the service runs whatever the image is called:
    ``vllm serve``, ``python -m vllm.entrypoints.openai.api_server``."""
    if "vllm-openai" in image_name(service):
        return True
    args = [arg for arg, _ in argv(service, "entrypoint")] + [arg for arg, _ in argv(service)]
    return any(
        arg == "vllm" or arg.endswith("/vllm") or arg.startswith("vllm.entrypoints") for arg in args
    )


def is_llamacpp(service: dict) -> bool:
    image = image_name(service)
    return "llama.cpp" in image or "llama-server" in image or "llama-cpp" in image


def is_model_server(service: dict) -> bool:
    return is_vllm(service) or is_llamacpp(service)


def is_front_door(name: str, service: dict) -> bool:
    """The reverse proxy in front of the stack: the front-door service r1deploy renders, or
    any nginx or Caddy service."""
    image = image_name(service)
    return name == "front-door" or image.startswith(("nginx", "caddy")) or "/nginx" in image


def is_webui(service: dict) -> bool:
    return "open-webui" in image_name(service)


def served_model(service: dict) -> str:
    """The model a vLLM command names: --model, or its first argument that is no flag."""
    args = argv(service)
    first = next((arg for arg, _ in args if not arg.startswith("-")), "")
    return (options(args).get("--model") or (first, ()))[0] or ""


def listen_port(service: dict) -> int:
    """The port a model server listens on inside its container."""
    option = options(argv(service)).get("--port")
    if option and option[0] and option[0].isdigit():
        return int(option[0])
    if is_llamacpp(service):
        env = environment(service).get("LLAMA_ARG_PORT")
        if env and str(env[0]).isdigit():
            return int(env[0])
        return LLAMACPP_DEFAULT_PORT
    return VLLM_DEFAULT_PORT


def is_interpolation(value: object) -> bool:
    return isinstance(value, str) and bool(INTERPOLATION.match(value.strip()))


def parse_port(entry: object, env: dict | None = None) -> tuple[str | None, str | None, str] | None:
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


def parse_len(text: str) -> int | None:
    """vLLM's --max-model-len: an integer, or with a k/K/m/M suffix."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if not match:
        return None
    number, suffix = float(match.group(1)), match.group(2)
    factor = {"": 1, "k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2}[suffix]
    return int(number * factor)


def gpu_reservations(service: dict) -> list[tuple[dict, tuple]]:
    """deploy.resources.reservations.devices entries, with their paths in the service."""
    devices = (
        ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    ).get("devices")
    if not isinstance(devices, list):
        return []
    base = ("deploy", "resources", "reservations", "devices")
    return [(d, base + (i,)) for i, d in enumerate(devices) if isinstance(d, dict)]
