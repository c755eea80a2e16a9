"""Validate tools.json files: the shipped file-format schema, then semantic rules.

Every finding is a :class:`~r1deploy.diagnostics.Diagnostic` that names the
file, the JSON pointer and line, what is wrong and what to do.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

import jsonschema_rs
from jsonschema import Draft202012Validator

from r1deploy import doclimits
from r1deploy.diagnostics import Diagnostic, SourceMap, errors, json_pointer, load_json
from r1deploy.hostnames import noncanonical_ipv4
from r1deploy.inputfile import InputRefused, read_text
from r1deploy.tools import strict

SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean", "null"})
# Methods whose arguments travel in the query string, so they must be scalars.
QUERY_METHODS = frozenset({"GET", "DELETE"})
# Header names whose values are credentials: they must come from the environment.
SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|api[-_]?key|password", re.I)


@cache
def file_schema() -> dict:
    text = resources.files("r1deploy.tools").joinpath("tools.schema.json").read_text()
    return json.loads(text)


@cache
def _file_validator() -> Draft202012Validator:
    return Draft202012Validator(file_schema())


@cache
def _metaschema_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


@dataclass
class FileResult:
    path: str
    plugins: list[dict] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: SourceMap | None = None


@dataclass
class Report:
    files: list[FileResult]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def valid(self) -> bool:
        return not errors(self.diagnostics)

    @property
    def plugins(self) -> list[dict]:
        return [p for f in self.files for p in f.plugins]

    def to_dict(self) -> dict:
        found = self.diagnostics
        return {
            "valid": self.valid,
            "files": [f.path for f in self.files],
            "errors": len(errors(found)),
            "warnings": len(found) - len(errors(found)),
            "diagnostics": [d.to_dict() for d in found],
        }


class _Findings:
    """Collects diagnostics for one file, placing each pointer on its line."""

    def __init__(self, path: str, source: SourceMap):
        self.path, self.source, self.items = path, source, []

    def add(self, path: tuple, rule: str, message: str, fix: str, *, severity="error", key=False):
        pointer = json_pointer(path)
        line, column = self.source.position(pointer, key=key)
        self.items.append(
            Diagnostic(self.path, pointer, rule, message, fix, severity, line, column)
        )


# --- the file-format schema -------------------------------------------------------------


def _schema_findings(document: object, found: _Findings) -> None:
    for error in _file_validator().iter_errors(document):
        path = tuple(error.absolute_path)
        keyword = error.validator
        if keyword == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(allowed)):
                close = difflib.get_close_matches(key, allowed, n=1)
                fix = (
                    f'did you mean "{close[0]}"? Rename the key'
                    if close
                    else "remove it; allowed keys are " + ", ".join(allowed)
                )
                found.add(path + (key,), "unknown-key", f'unknown key "{key}"', fix, key=True)
        elif keyword == "required":
            missing = error.message.split("'")[1]
            found.add(
                path,
                "missing-key",
                f'missing required key "{missing}"',
                f'add "{missing}" (see the format in r1deploy/tools/tools.schema.json)',
            )
        else:
            found.add(path, f"schema-{keyword}", *_explain(path, keyword, error))


def _explain(path: tuple, keyword: str, error) -> tuple[str, str]:
    """Message and fix for a schema error, in the words of the field it concerns."""
    field_name = next((p for p in reversed(path) if isinstance(p, str)), "")
    if field_name == "id" and keyword == "pattern":
        return (
            f"id {error.instance!r} is not a valid Open WebUI tool id",
            "use lowercase letters, digits and underscores, starting with a letter "
            'or underscore, at most 64 characters (e.g. "weather_tool")',
        )
    if field_name == "name" and keyword == "pattern":
        return (
            f"name {error.instance!r} is not a valid function name",
            "use 1-64 letters, digits, underscores or hyphens (OpenAI function-name rules)",
        )
    if field_name == "method" and keyword == "enum":
        return (
            f"method {error.instance!r} is not supported",
            "use one of GET, POST, PUT, PATCH, DELETE (upper case)",
        )
    if keyword == "type" and not path:
        return (
            "the file must be a JSON array of plugin objects",
            'wrap the plugins in [ ... ]: [{"id": ..., "name": ..., ...}]',
        )
    if len(path) >= 2 and path[-2] == "headers" or (path and path[-1] == "env"):
        return (
            'a header value must be a string or {"env": "NAME"}',
            'give a literal for non-secret headers, {"env": "VAR_NAME"} for secrets',
        )
    described = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    return error.message, described or "see r1deploy/tools/tools.schema.json for this key"


# --- semantic rules, one function each ---------------------------------------------------

PluginRule = Callable[[tuple, dict, _Findings], None]


def _params_is_schema(path: tuple, plugin: dict, found: _Findings) -> None:
    params = plugin.get("params")
    if not isinstance(params, dict):
        return
    # The Rust validator answers yes/no fast; the errors, rare, come from jsonschema
    # so they read like every other finding. A second JSON Schema engine earns its place
    # here: `make bench` validates 1,000 plugins in a median 0.35 s with it and 1.1 s with
    # jsonschema's is_valid alone, over the 1 s target (measured 2026-12-01, 2 cores).
    errors_found = (
        [] if jsonschema_rs.meta.is_valid(params) else _metaschema_validator().iter_errors(params)
    )
    for error in errors_found:
        found.add(
            path + ("params",) + tuple(error.absolute_path),
            "params-not-a-schema",
            f"params is not a valid JSON Schema: {error.message}",
            "fix this keyword so params is a JSON Schema (draft 2020-12)",
        )
    if params.get("type") != "object":
        found.add(
            path + ("params",),
            "params-not-object",
            'params must describe an object of named arguments ("type": "object")',
            'set "type": "object" and list the arguments under "properties"',
        )


def _required_are_declared(path: tuple, plugin: dict, found: _Findings) -> None:
    params = plugin.get("params")
    if not isinstance(params, dict):
        return
    properties = params.get("properties", {})
    required = params.get("required", [])
    if not isinstance(properties, dict) or not isinstance(required, list):
        return
    for index, name in enumerate(required):
        if isinstance(name, str) and name not in properties:
            close = difflib.get_close_matches(name, list(properties), n=1)
            found.add(
                path + ("params", "required", index),
                "required-undeclared",
                f'"{name}" is required but not declared in params.properties',
                f'did you mean "{close[0]}"?'
                if close
                else f'declare "{name}" under properties or remove it from required',
            )


def _refs(schema: object, path: tuple) -> Iterator[tuple[tuple, object]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield path + (key,), value
            else:
                yield from _refs(value, path + (key,))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _refs(value, path + (index,))


def _no_remote_ref(path: tuple, plugin: dict, found: _Findings) -> None:
    for ref_path, ref in _refs(plugin.get("params"), path + ("params",)):
        if not (isinstance(ref, str) and ref.startswith("#")):
            found.add(
                ref_path,
                "remote-ref",
                f"$ref {ref!r} points outside this file",
                'inline the schema or put it under params "$defs" and use "#/$defs/NAME"',
            )


def _placeholders(text: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return ["{"]  # an unbalanced brace: reported by the caller as a bad placeholder


def _url_is_absolute_and_placeholders_match(path: tuple, plugin: dict, found: _Findings) -> None:
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
            "url-invalid",
            f"url {url!r} cannot be read as a URL: {exc}",
            'write the full address, e.g. "https://api.example.com/v1/{city}" '
            '(an IPv6 host goes in brackets: "https://[2001:db8::1]/v1")',
        )
        return
    if parts.scheme not in ("http", "https") or not parts.netloc:
        found.add(
            where,
            "url-not-absolute",
            f"url {url!r} is not an absolute http(s) URL",
            'write the full address, e.g. "https://api.example.com/v1/{city}"',
        )
        return
    if "{" in parts.netloc or "}" in parts.netloc:
        found.add(
            where,
            "url-host-placeholder",
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
                "url-bad-placeholder",
                f"malformed placeholder in the url path: {url!r}",
                "placeholders are {name} with the name of a declared argument",
            )
        elif name not in properties:
            found.add(
                where,
                "url-placeholder-undeclared",
                f'url placeholder "{{{name}}}" is not a declared argument',
                f'declare "{name}" under params.properties (and in required), '
                "or remove the placeholder",
            )
        elif name not in required:
            found.add(
                where,
                "url-placeholder-optional",
                f'url placeholder "{{{name}}}" is an optional argument: the path breaks '
                "when the model leaves it out",
                f'add "{name}" to params.required',
            )
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        found.add(
            where,
            "url-plain-http",
            f"url {url!r} uses plain http: arguments and answers travel unencrypted",
            "use https:// if the API offers it",
            severity="warning",
        )


def _url_host_is_canonical(path: tuple, plugin: dict, found: _Findings) -> None:
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
        "url-host-not-canonical",
        f"host {host!r} is read as an IPv4 address but is not written as one "
        "(octal, hexadecimal, a single number or a short form)",
        f"write the address as {canonical}"
        if canonical
        else "write a host name, or an IPv4 address as four decimal numbers 0-255",
    )


def _numbers_are_finite(path: tuple, plugin: dict, found: _Findings) -> None:
    for where in doclimits.non_finite_numbers(plugin):
        found.add(
            path + where,
            "number-not-finite",
            "NaN and Infinity are not JSON numbers (1e999 overflows to Infinity); "
            "they pass every bound, and the gateway cannot send them",
            "write a finite number",
        )


def _keys_are_unique(path: tuple, plugin: dict, found: _Findings) -> None:
    for where in doclimits.duplicate_keys(plugin):
        found.add(
            path + where,
            "duplicate-key",
            f'key "{where[-1]}" appears more than once in its object; the last one '
            "would win without a word",
            "keep one of them",
            key=True,
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve_local_ref(root: dict, schema: object) -> object:
    """Follow a "#/..." $ref inside params (remote ones are refused by another rule)."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not (isinstance(ref, str) and ref.startswith("#/")):
        return schema
    target: object = root
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or token not in target:
            return schema
        target = target[token]
    return target


def _query_arguments_are_scalars(path: tuple, plugin: dict, found: _Findings) -> None:
    method = plugin.get("method")
    params = plugin.get("params")
    if not isinstance(method, str) or method not in QUERY_METHODS or not isinstance(params, dict):
        return
    properties = params.get("properties", {})
    if not isinstance(properties, dict):
        return
    for name, schema in properties.items():
        schema = _resolve_local_ref(params, schema)
        if not isinstance(schema, dict):
            continue
        declared = schema.get("type")
        types = set(declared) if isinstance(declared, list) else {declared}
        scalar = (
            types <= SCALAR_TYPES
            if declared is not None
            else ("enum" in schema or "const" in schema)
        )
        if not scalar:
            found.add(
                path + ("params", "properties", name),
                "query-argument-not-scalar",
                f'argument "{name}" of a {method} tool must be a string, number, integer or '
                "boolean: it travels in the query string",
                f'give "{name}" a scalar "type", or use POST to send a JSON body',
            )


def _strict_rules(path: tuple, plugin: dict, found: _Findings) -> None:
    if plugin.get("strict") is not True:
        return
    for where, message, fix in strict.violations(plugin.get("params"), path + ("params",)):
        found.add(where, "strict", message, fix)


def _no_secret_literals_in_headers(path: tuple, plugin: dict, found: _Findings) -> None:
    headers = plugin.get("headers")
    if not isinstance(headers, dict):
        return
    for name, value in headers.items():
        if isinstance(value, str) and SECRET_HEADER.search(name):
            env_name = re.sub(r"[^A-Z0-9]", "_", name.upper())
            found.add(
                path + ("headers", name),
                "secret-literal",
                f'header "{name}" carries a credential as a literal in the file',
                f'use {{"env": "{env_name}"}} and set {env_name} where the gateway runs',
            )


def _arguments_are_described(path: tuple, plugin: dict, found: _Findings) -> None:
    params = plugin.get("params")
    properties = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(properties, dict):
        return
    for name, schema in properties.items():
        if isinstance(schema, dict) and not schema.get("description"):
            found.add(
                path + ("params", "properties", name),
                "argument-undescribed",
                f'argument "{name}" has no description: the model chooses its value from it',
                f'add "description" to "{name}"',
                severity="warning",
            )


PLUGIN_RULES: tuple[PluginRule, ...] = (
    _keys_are_unique,
    _numbers_are_finite,
    _params_is_schema,
    _required_are_declared,
    _no_remote_ref,
    _url_is_absolute_and_placeholders_match,
    _url_host_is_canonical,
    _query_arguments_are_scalars,
    _strict_rules,
    _no_secret_literals_in_headers,
    _arguments_are_described,
)


# --- files ------------------------------------------------------------------------------


def validate_text(path: str, text: str) -> FileResult:
    result = FileResult(path)
    document, source, syntax = load_json(path, text, max_values=doclimits.MAX_TOOLS_FILE_VALUES)
    if syntax:
        result.diagnostics = syntax
        return result
    result.source = source
    found = _Findings(path, source)
    _schema_findings(document, found)
    if isinstance(document, list):
        for index, plugin in enumerate(document):
            if isinstance(plugin, dict):
                for rule in PLUGIN_RULES:
                    rule((index,), plugin, found)
        result.plugins = [p for p in document if isinstance(p, dict)]
    result.diagnostics = found.items
    return result


def _unique_across_files(results: list[FileResult]) -> None:
    for key in ("id", "name"):
        first_seen: dict[str, tuple[FileResult, str]] = {}
        for result in results:
            for index, plugin in enumerate(result.plugins):
                value = plugin.get(key)
                if not isinstance(value, str):
                    continue
                pointer = json_pointer((index, key))
                if value in first_seen:
                    first, first_pointer = first_seen[value]
                    first_line, _ = first.source.position(first_pointer)
                    line, column = result.source.position(pointer)
                    result.diagnostics.append(
                        Diagnostic(
                            result.path,
                            pointer,
                            f"duplicate-{key}",
                            f'{key} "{value}" is already used at '
                            f"{first.path}:{first_line} ({first_pointer})",
                            f"give each plugin its own {key}",
                            "error",
                            line,
                            column,
                        )
                    )
                else:
                    first_seen[value] = (result, pointer)


def _validate_path(path: str) -> FileResult:
    try:
        text = read_text(path)
    except InputRefused as exc:
        return FileResult(path, diagnostics=[exc.diagnostic(path)])
    return validate_text(path, text)


def validate_files(paths: list[str]) -> Report:
    """Validate each file, then the rules that span them (unique ids and names).

    Raises OSError when a file cannot be opened: that is a usage problem, not a finding.
    A FIFO, a device, a file over MAX_INPUT_BYTES or one that is not UTF-8 is a finding.
    """
    results = [_validate_path(str(p)) for p in paths]
    _unique_across_files(results)
    for result in results:
        result.diagnostics.sort(key=lambda d: (d.line or 0, d.column or 0, d.pointer))
    return Report(results)


class ToolsFileError(ValueError):
    """A tools file that does not validate; carries the diagnostics."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__("\n".join(str(d) for d in errors(report.diagnostics)))


def load_plugins(*paths: str) -> list[dict]:
    """The plugins of valid tools files, or ToolsFileError naming every problem."""
    report = validate_files(list(paths))
    if not report.valid:
        raise ToolsFileError(report)
    return report.plugins
