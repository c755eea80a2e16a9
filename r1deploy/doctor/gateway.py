"""gateway.upstreams: whether this machine reaches the upstream API of each tool of tools.json."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from r1deploy.doctor.core import DoctorContext, Verdict, passed, skipped, warned

# A TCP connect to a reachable API takes well under this; the gateway's own per-call timeout
# (tools.json timeout_s) is longer, but the doctor must not wait on every unreachable host.
CONNECT_TIMEOUT_S = 3.0


def _upstream(plugin: dict, env: dict[str, str]) -> tuple[str, int, str]:
    """(host, port, where it comes from) of a plugin's calls: its url, or the base_url_env
    override the gateway reads from the stack's .env (r1deploy/gateway/routes.py)."""
    override = plugin.get("base_url_env")
    url, where = plugin["url"], "its url"
    if override and env.get(override):
        url, where = env[override], f"{override} in .env (its base_url_env)"
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), where


def gateway_upstreams(ctx: DoctorContext) -> Verdict:
    if not (ctx.settings.get("gateway") or {}).get("enabled"):
        return skipped("no tool gateway (settings.json gateway.enabled is false)")
    tools_file = ctx.stack.file("tools_file", "tools.json")
    try:
        plugins = json.loads(tools_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return skipped(f"{tools_file} is not readable here: {exc}")
    tried: dict[tuple[str, int], str | None] = {}  # each host once: why it fails, or None
    seen, unreachable, data = [], [], {}
    timeout_s = min(ctx.timeout_s, CONNECT_TIMEOUT_S)
    for plugin in plugins:
        if not str(plugin.get("url", "")).startswith(("http://", "https://")):
            continue
        host, port, where = _upstream(plugin, ctx.stack.env)
        if (host, port) not in tried:
            tried[host, port] = _why_unreachable(ctx, host, port, timeout_s)
        why = tried[host, port]
        data[plugin["name"]] = {"host": host, "port": port, "from": where, "error": why}
        if why is None:
            seen.append(f"{plugin['name']} {host}:{port}")
        else:
            unreachable.append(f"{plugin['name']} ({host}:{port} from {where}): {why}")
    if not data:
        return skipped(f"{tools_file} has no tool with an HTTP upstream")
    if not unreachable:
        return passed("each tool's upstream answers a TCP connect: " + ", ".join(seen), **data)
    return warned(
        "; ".join(unreachable),
        "the gateway cannot reach these tools' APIs: calls to them fail (HTTP 502 or 504 "
        "after the tool's timeout_s) and the model answers without the tool. This machine "
        "was asked: on the docker runtime the gateway's container uses the same DNS and "
        "routes, unless Docker's network differs",
        "correct the tool's url (or its base_url_env value in .env) in tools.json "
        "(r1_stack_tools_file), then make deploy; or let this host resolve and reach it (its "
        "DNS, the firewall). The gateway uses no proxy: it does not read HTTPS_PROXY (it "
        "checks the address it connects to), so an upstream behind a proxy only is out of "
        "its reach",
        **data,
    )


def _why_unreachable(ctx: DoctorContext, host: str, port: int, timeout_s: float) -> str | None:
    try:
        addresses = ctx.resolve(host, port)
    except OSError as exc:
        return f"DNS does not resolve {host} ({exc})"
    if not addresses:
        return f"DNS gives no address for {host}"
    errors = []
    for address in addresses:
        try:
            ctx.connect(address, port, timeout_s)
            return None
        except OSError as exc:
            errors.append(f"{address}: {str(exc) or type(exc).__name__}")
    return f"resolves, but no TCP connect in {timeout_s:g} s ({'; '.join(errors)})"
