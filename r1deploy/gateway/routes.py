"""Compile validated plugins into routes: where each call goes and with what.

Everything that depends on the environment (base URL overrides, header secrets) is
resolved here, once, at startup, so a missing variable stops the gateway with a
message naming the plugin and the variable instead of failing the first call.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from jsonschema import Draft202012Validator

from r1deploy.hostnames import noncanonical_ipv4

# Used when a plugin does not set its own; documented in README (tool gateway).
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")
QUERY_METHODS = frozenset({"GET", "DELETE"})
# httpx refuses longer URLs ("URL too long"), which the gateway answered with a 500.
MAX_URL_LENGTH = 65536


class GatewayConfigError(ValueError):
    """The tools file cannot be served as configured (names the plugin and what to set)."""


class InvalidArguments(ValueError):
    """Arguments that fit the schema but cannot make a request: where, and why."""

    def __init__(self, pointer: str, message: str):
        super().__init__(message)
        self.pointer, self.message = pointer, message


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{_host_for_url(self.host)}{port}"


@dataclass(frozen=True)
class Route:
    """One plugin, ready to be called."""

    name: str
    tool_id: str
    method: str
    origin: Origin
    # Path prefix of a base_url_env override, then the plugin's path with placeholders.
    path_template: str
    # The query string written in the plugin's url, passed on verbatim.
    fixed_query: str
    headers: Mapping[str, str]
    timeout_s: float
    max_response_bytes: int
    allow_private_network: bool
    validator: Draft202012Validator

    def argument_errors(self, arguments: object) -> list[tuple[str, str]]:
        """(JSON pointer, message) of each way the arguments break the plugin's params."""
        found = []
        for error in sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.path)):
            path = list(error.absolute_path)
            if error.validator == "required":
                # Point at the missing member, not at the object that lacks it.
                missing = re.match(r"'([^']*)'", error.message)
                if missing:
                    path.append(missing.group(1))
            found.append((_pointer(path), error.message))
        return found

    def build_request(self, arguments: dict) -> tuple[str, dict | None]:
        """The upstream URL and JSON body for validated arguments.

        Placeholder values are percent-encoded as one path segment: '/', '?', '#', '@',
        '%' and '.' are all escaped, so no argument can add a segment, climb with '..',
        or reach another host. InvalidArguments for an empty segment or a URL too long.
        """
        consumed: set[str] = set()

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            consumed.add(name)
            segment = encode_segment(arguments.get(name, ""))
            if not segment:
                # "/items/{id}/tail" with "" would call "/items//tail": another resource.
                raise InvalidArguments(
                    _pointer([name]), "fills a path segment of the url: it must not be empty"
                )
            return segment

        path = PLACEHOLDER.sub(substitute, self.path_template)
        rest = {k: v for k, v in arguments.items() if k not in consumed}
        query = self.fixed_query
        body = None
        if self.method in QUERY_METHODS:
            pairs = [(k, _scalar_text(v)) for k, v in rest.items() if v is not None]
            if pairs:
                encoded = urlencode(pairs, quote_via=quote, safe="")
                query = f"{query}&{encoded}" if query else encoded
        else:
            body = rest
        url = f"{self.origin}{path}" + (f"?{query}" if query else "")
        if len(url) > MAX_URL_LENGTH:
            in_url = consumed | (set(rest) if self.method in QUERY_METHODS else set())
            longest = max(in_url, key=lambda k: len(_scalar_text(arguments[k])), default="")
            raise InvalidArguments(
                _pointer([longest] if longest else []),
                f"makes the upstream URL {len(url)} characters long, over {MAX_URL_LENGTH}",
            )
        return url, body


def encode_segment(value: object) -> str:
    # quote() leaves '.' alone; '..' as a whole segment would be normalised away by the
    # client or the server, so dots are escaped too (%2E is equivalent per RFC 3986).
    return quote(_scalar_text(value), safe="").replace(".", "%2E")


def _scalar_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _pointer(path: list) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _origin_of(url: str, where: str) -> tuple[Origin, str]:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise GatewayConfigError(f"{where}: {url!r} cannot be read as a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayConfigError(f"{where}: {url!r} is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise GatewayConfigError(f"{where}: {url!r} carries credentials; use headers instead")
    canonical = noncanonical_ipv4(parts.hostname)
    if canonical is not None:
        raise GatewayConfigError(
            f"{where}: host {parts.hostname!r} is read as an IPv4 address but is not "
            f"written as one; write {canonical or 'a host name or four decimal numbers'}"
        )
    return Origin(parts.scheme, parts.hostname.lower(), port), parts.path


def _resolve_headers(plugin: dict, environ: Mapping[str, str]) -> dict[str, str]:
    headers = {}
    for name, value in plugin.get("headers", {}).items():
        if isinstance(value, str):
            headers[name] = value
            continue
        secret = environ.get(value["env"], "")
        if not secret:
            raise GatewayConfigError(
                f'plugin "{plugin["name"]}" (id {plugin["id"]}): header "{name}" takes its '
                f"value from the environment variable {value['env']}, which is not set; "
                f"set {value['env']} where the gateway runs (the stack's .env)"
            )
        headers[name] = value.get("prefix", "") + secret
    return headers


def compile_route(plugin: dict, environ: Mapping[str, str]) -> Route:
    where = f'plugin "{plugin["name"]}" (id {plugin["id"]}) url'
    origin, path = _origin_of(plugin["url"], where)
    query = urlsplit(plugin["url"]).query
    override_env = plugin.get("base_url_env")
    if override_env and environ.get(override_env):
        override = environ[override_env]
        origin, prefix = _origin_of(
            override, f'{override_env} (base_url_env of plugin "{plugin["name"]}")'
        )
        path = prefix.rstrip("/") + path
    return Route(
        name=plugin["name"],
        tool_id=plugin["id"],
        method=plugin["method"],
        origin=origin,
        path_template=path or "/",
        fixed_query=query,
        headers=_resolve_headers(plugin, environ),
        timeout_s=float(plugin.get("timeout_s", DEFAULT_TIMEOUT_S)),
        max_response_bytes=int(plugin.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)),
        allow_private_network=bool(plugin.get("allow_private_network", False)),
        validator=Draft202012Validator(plugin["params"]),
    )


def compile_routes(plugins: list[dict], environ: Mapping[str, str] | None = None) -> list[Route]:
    """Routes for validated plugins; GatewayConfigError lists every problem at once."""
    environ = os.environ if environ is None else environ
    routes, problems = [], []
    for plugin in plugins:
        try:
            routes.append(compile_route(plugin, environ))
        except GatewayConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise GatewayConfigError("\n".join(problems))
    return routes
