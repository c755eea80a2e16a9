"""No model API beyond loopback: vLLM's key guards /v1/* only (/invocations runs a chat
without it; /tokenize, /metrics, /docs answer anyone), so it is reached through Open WebUI,
the compose network, or an SSH tunnel, never published."""

from __future__ import annotations

from r1deploy.compose.interpolation import MissingVariable
from r1deploy.compose.registry import RULES
from r1deploy.compose.services import (
    ComposeFile,
    is_front_door,
    is_model_server,
    listen_port,
    parse_port,
)
from r1deploy.diagnostics import Findings

PUBLIC_PORT = RULES["public-port"]
FRONT_DOOR_ONLY = RULES["front-door-only"]
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _published_beyond_loopback(service: dict, env: dict):
    """(index, where, port) of each port entry published beyond loopback."""
    for index, entry in enumerate(service.get("ports") or []):
        try:
            parsed = parse_port(entry, env)
        except MissingVariable:
            parsed = parse_port(entry)  # an unset ${HOST?err}: the address is unknown
        if parsed is None:
            continue
        host_ip, published, target = parsed
        if host_ip in LOOPBACK:
            continue
        unknown = isinstance(host_ip, str) and "$" in host_ip
        where = (
            f"on {host_ip}, an address .env does not set"
            if unknown
            else f"on {host_ip}"
            if host_ip
            else "on all interfaces"
        )
        yield index, where, published or target


def check(compose: ComposeFile, found: Findings) -> None:
    env = compose.env
    doors = [n for n, s in compose.services.items() if is_front_door(n, s)]
    if doors:
        for name, service in compose.services.items():
            if name in doors or is_model_server(service):
                continue
            for index, where, port in _published_beyond_loopback(service, env):
                found.add(
                    ("services", name, "ports", index),
                    FRONT_DOOR_ONLY,
                    f"service {name} publishes port {port} {where}, beside the front door "
                    f"({', '.join(doors)}): it would be a way in without HTTPS or a key",
                    f"publish it on loopback only (127.0.0.1:{port}:...), or not at all: "
                    "people reach it through the front door",
                )
    for name, service in compose.services.items():
        if not is_model_server(service):
            continue
        fix = (
            f"publish it on loopback only (127.0.0.1:PORT:{listen_port(service)}); "
            "clients on other hosts use Open WebUI, or an SSH tunnel to that port"
        )
        if service.get("network_mode") == "host":
            found.add(
                ("services", name, "network_mode"),
                PUBLIC_PORT,
                f"service {name}: network_mode host exposes the model API on every interface "
                "(its key guards only /v1/*)",
                fix,
            )
        for index, where, port in _published_beyond_loopback(service, env):
            found.add(
                ("services", name, "ports", index),
                PUBLIC_PORT,
                f"service {name} publishes the model API (port {port}) "
                f"{where}: it would be reachable from the network, and vLLM's key guards only "
                "/v1/* (/invocations, /tokenize, /metrics, /docs answer without it)",
                fix,
            )
