"""Export plugins to the forms the servers take.

- ``openai``: the ``tools`` array of vLLM's ``/v1/chat/completions``.
- ``openapi``: an OpenAPI 3.1 document with one operation per plugin, the form
  Open WebUI consumes from a tool server (the gateway serves exactly this).

Both are deterministic (plugin order of the file, fixed key order) so they diff cleanly.
"""

from __future__ import annotations

import json

from r1deploy import __version__
from r1deploy.tools import strict

FORMATS = ("openai", "openapi")
# The gateway's route for a plugin; the openapi export and the gateway share it.
OPERATION_PATH = "/tools/{name}"


def is_strict(plugin: dict) -> bool:
    """The file's ``strict`` when given, else whether the schema allows strict mode.

    vLLM 0.32 holds arguments to the schema only for strict tools, so every tool
    that can be strict is, unless the file says otherwise.
    """
    if "strict" in plugin:
        return bool(plugin["strict"])
    return strict.is_compatible(plugin["params"])


def to_openai(plugins: list[dict]) -> list[dict]:
    return [
        {
            "type": "function",
            "function": {
                "name": plugin["name"],
                "description": plugin["description"],
                "parameters": plugin["params"],
                "strict": is_strict(plugin),
            },
        }
        for plugin in plugins
    ]


def operation_path(plugin: dict) -> str:
    return OPERATION_PATH.format(name=plugin["name"])


def to_openapi(plugins: list[dict], server_url: str | None = None) -> dict:
    paths = {}
    for plugin in plugins:
        paths[operation_path(plugin)] = {
            "post": {
                "operationId": plugin["name"],
                "summary": plugin["description"].split("\n", 1)[0],
                "description": plugin["description"],
                "x-r1deploy-tool-id": plugin["id"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": plugin["params"]}},
                },
                "responses": {
                    "200": {"description": "The upstream API's answer."},
                    "400": {"description": "The arguments do not match the tool's schema."},
                    "401": {"description": "Missing or wrong bearer key."},
                    "502": {"description": "The upstream API failed or answered too much."},
                    "504": {"description": "The upstream API did not answer in time."},
                },
            }
        }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "r1deploy tools",
            "description": "Agent plugins from tools.json, served by the r1deploy tool gateway.",
            "version": __version__,
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def export(plugins: list[dict], fmt: str, server_url: str | None = None) -> str:
    """The export as text: indented JSON with a trailing newline."""
    if fmt == "openai":
        data: object = to_openai(plugins)
    elif fmt == "openapi":
        data = to_openapi(plugins, server_url)
    else:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
