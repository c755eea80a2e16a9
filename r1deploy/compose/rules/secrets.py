"""No secret in the compose file: secrets live in the .env beside it and appear here only as
${NAME:?} references."""

from __future__ import annotations

import json
import re

from r1deploy.compose.registry import RULES
from r1deploy.compose.services import (
    SECRET_NAME,
    ComposeFile,
    argv,
    environment,
    is_interpolation,
    options,
)
from r1deploy.diagnostics import Findings

SECRET_LITERAL = RULES["secret-literal"]
WEBUI_ENV = RULES["webui-env"]
SECRET_ARGS = frozenset({"--api-key", "--hf-token"})
HF_TOKEN_LITERAL = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")


def check(compose: ComposeFile, found: Findings) -> None:
    for name, service in compose.services.items():
        base = ("services", name)
        for variable, (value, path) in environment(service).items():
            if value in (None, "") or is_interpolation(value):
                continue
            if SECRET_NAME.search(variable):
                found.add(
                    base + path,
                    SECRET_LITERAL,
                    f"service {name}: {variable} holds a literal secret in the compose file",
                    f"put it in .env as {variable}=... and write {variable}: "
                    f"${{{variable}:?}} here",
                )
            elif variable == "TOOL_SERVER_CONNECTIONS":
                _check_tool_server_keys(name, str(value), base + path, found)
        for flag, (value, path) in options(argv(service)).items():
            if flag in SECRET_ARGS and value and not is_interpolation(value):
                found.add(
                    base + path,
                    SECRET_LITERAL,
                    f"service {name}: {flag} is given a literal secret",
                    "drop the flag and pass the key through the environment from .env "
                    "(VLLM_API_KEY: ${VLLM_API_KEY:?})",
                )
    env_secrets = compose.env_secrets
    for line_number, line in enumerate(compose.text.splitlines(), start=1):
        if HF_TOKEN_LITERAL.search(line):
            found.add_line(
                SECRET_LITERAL,
                "a Hugging Face token is written in the compose file",
                "put it in .env as HF_TOKEN=... and refer to ${HF_TOKEN}",
                line_number,
            )
        for key, secret in env_secrets.items():
            if len(secret) >= 8 and secret in line:
                found.add_line(
                    SECRET_LITERAL,
                    f"the value of {key} from .env is written in the compose file",
                    f"refer to it as ${{{key}:?}} instead of its value",
                    line_number,
                )


def _check_tool_server_keys(name: str, value: str, path: tuple, found: Findings) -> None:
    try:
        connections = json.loads(value)
    except json.JSONDecodeError as exc:
        found.add(
            path,
            WEBUI_ENV,
            f"service {name}: TOOL_SERVER_CONNECTIONS is not valid JSON ({exc.msg})",
            "write it as a JSON list of connections",
        )
        return
    for index, connection in enumerate(connections if isinstance(connections, list) else []):
        key = connection.get("key") if isinstance(connection, dict) else None
        if key and not is_interpolation(key):
            found.add(
                path,
                SECRET_LITERAL,
                f"service {name}: TOOL_SERVER_CONNECTIONS[{index}].key is a literal secret",
                'write "key":"${TOOLS_GATEWAY_KEY:?}" and keep the key in .env',
            )
