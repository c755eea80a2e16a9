"""Open WebUI's wiring: the variables it reads, its backend URL and key, and waiting for a
healthy model server."""

from __future__ import annotations

import difflib
from urllib.parse import urlsplit

from r1deploy.compose.registry import RULES
from r1deploy.compose.services import (
    ComposeFile,
    argv,
    environment,
    is_model_server,
    is_webui,
    listen_port,
    options,
)
from r1deploy.diagnostics import Findings

WEBUI_ENV = RULES["webui-env"]
WEBUI_BACKEND = RULES["webui-backend"]
WEBUI_DEPENDS = RULES["webui-depends"]

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


def check(compose: ComposeFile, found: Findings) -> None:
    services = compose.services
    model_servers = {n for n, s in services.items() if is_model_server(s)}
    for name, service in services.items():
        if not is_webui(service):
            continue
        env = environment(service)
        base = ("services", name)
        for variable, (_, path) in env.items():
            if variable in WEBUI_WRONG_ENV:
                right = WEBUI_WRONG_ENV[variable]
                found.add(
                    base + path,
                    WEBUI_ENV,
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
                        WEBUI_ENV,
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
            WEBUI_BACKEND,
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
                WEBUI_BACKEND,
                f"service {name}: OPENAI_API_BASE_URL {url} points at '{host}', which is not "
                f"a service of this file (model servers: {hint})",
                "point it at the vLLM service by its service name, e.g. http://vllm:8000/v1",
            )
            continue
        if host in model_servers:
            expected = listen_port(services[host])
            if port != expected:
                found.add(
                    where,
                    WEBUI_BACKEND,
                    f"service {name}: OPENAI_API_BASE_URL {url} uses port {port} but "
                    f"{host} listens on {expected}",
                    f"use http://{host}:{expected}/v1 (the container port, not the published one)",
                )
        if parts.path.rstrip("/") != "/v1":
            found.add(
                where,
                WEBUI_BACKEND,
                f"service {name}: OPENAI_API_BASE_URL {url} must end in /v1",
                f"use http://{host}:{port}/v1",
            )
    if "OPENAI_API_KEY" not in env and "OPENAI_API_KEYS" not in env:
        guarded = any(
            "VLLM_API_KEY" in environment(services[s])
            or "--api-key" in options(argv(services[s]))
            or "LLAMA_API_KEY" in environment(services[s])
            for s in model_servers
        )
        if guarded:
            found.add(
                base,
                WEBUI_BACKEND,
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
                WEBUI_DEPENDS,
                f"service {name}: Open WebUI does not wait for {server} to be healthy, so it "
                "starts with no model",
                f"add depends_on: {{{server}: {{condition: service_healthy}}}}",
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
                    WEBUI_DEPENDS,
                    f"service {name} waits for {other} to be healthy but {other} has no "
                    "healthcheck: docker compose refuses to start",
                    f"give {other} a healthcheck (GET /health)",
                    severity="error",
                )
