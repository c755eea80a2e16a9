"""A plugin's ``url``: absolute http(s), its host fixed and canonical, its placeholders the
plugin's required arguments."""

from __future__ import annotations

import ipaddress
import re
import string
from urllib.parse import urlsplit

from r1deploy.diagnostics import Findings
from r1deploy.hostnames import noncanonical_ipv4
from r1deploy.tools.registry import RULES

URL_BAD_PLACEHOLDER = RULES["url-bad-placeholder"]
URL_HOST_NOT_CANONICAL = RULES["url-host-not-canonical"]
URL_HOST_PLACEHOLDER = RULES["url-host-placeholder"]
URL_INVALID = RULES["url-invalid"]
URL_NOT_ABSOLUTE = RULES["url-not-absolute"]
URL_PLACEHOLDER_OPTIONAL = RULES["url-placeholder-optional"]
URL_PLACEHOLDER_UNDECLARED = RULES["url-placeholder-undeclared"]
URL_PLAIN_HTTP = RULES["url-plain-http"]


def _placeholders(text: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return ["{"]  # an unbalanced brace: reported by the caller as a bad placeholder


def url_is_absolute_and_placeholders_match(path: tuple, plugin: dict, found: Findings) -> None:
    url = plugin.get("url")
    if not isinstance(url, str):
        return
    where = path + ("url",)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number in 0-65535
    except ValueError as exc:
        found.add(
            where,
            URL_INVALID,
            f"url {url!r} cannot be read as a URL: {exc}",
            'write the full address, e.g. "https://api.example.com/v1/{city}" '
            '(an IPv6 host goes in brackets: "https://[2001:db8::1]/v1")',
        )
        return
    if parts.scheme not in ("http", "https") or not parts.netloc:
        found.add(
            where,
            URL_NOT_ABSOLUTE,
            f"url {url!r} is not an absolute http(s) URL",
            'write the full address, e.g. "https://api.example.com/v1/{city}"',
        )
        return
    if "{" in parts.netloc or "}" in parts.netloc:
        found.add(
            where,
            URL_HOST_PLACEHOLDER,
            "a placeholder in the host would let an argument choose which server is called",
            "keep placeholders in the path only; use base_url_env to move the host",
        )
    params = plugin.get("params") if isinstance(plugin.get("params"), dict) else {}
    properties = params.get("properties", {}) if isinstance(params.get("properties"), dict) else {}
    required = params.get("required", []) if isinstance(params.get("required"), list) else []
    for name in _placeholders(parts.path):
        if name == "{" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            found.add(
                where,
                URL_BAD_PLACEHOLDER,
                f"malformed placeholder in the url path: {url!r}",
                "placeholders are {name} with the name of a declared argument",
            )
        elif name not in properties:
            found.add(
                where,
                URL_PLACEHOLDER_UNDECLARED,
                f'url placeholder "{{{name}}}" is not a declared argument',
                f'declare "{name}" under params.properties (and in required), '
                "or remove the placeholder",
            )
        elif name not in required:
            found.add(
                where,
                URL_PLACEHOLDER_OPTIONAL,
                f'url placeholder "{{{name}}}" is an optional argument: the path breaks '
                "when the model leaves it out",
                f'add "{name}" to params.required',
            )
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        found.add(
            where,
            URL_PLAIN_HTTP,
            f"url {url!r} uses plain http: arguments and answers travel unencrypted",
            "use https:// if the API offers it",
            severity="warning",
        )


def url_host_is_canonical(path: tuple, plugin: dict, found: Findings) -> None:
    url = plugin.get("url")
    try:
        host = urlsplit(url).hostname if isinstance(url, str) else None
    except ValueError:
        return  # reported by the url rule
    canonical = noncanonical_ipv4(host) if host else None
    if canonical is None:
        return
    found.add(
        path + ("url",),
        URL_HOST_NOT_CANONICAL,
        f"host {host!r} is read as an IPv4 address but is not written as one "
        "(octal, hexadecimal, a single number or a short form)",
        f"write the address as {canonical}"
        if canonical
        else "write a host name, or an IPv4 address as four decimal numbers 0-255",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
