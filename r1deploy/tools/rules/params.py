"""A plugin's ``params``: a JSON Schema of an object whose arguments the model can fill and
the gateway can send."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

import jsonschema_rs

from r1deploy.diagnostics import Findings
from r1deploy.tools import strict
from r1deploy.tools.registry import RULES
from r1deploy.tools.rules.schema import metaschema_validator

ARGUMENT_UNDESCRIBED = RULES["argument-undescribed"]
PARAMS_NOT_A_SCHEMA = RULES["params-not-a-schema"]
PARAMS_NOT_OBJECT = RULES["params-not-object"]
QUERY_ARGUMENT_NOT_SCALAR = RULES["query-argument-not-scalar"]
REMOTE_REF = RULES["remote-ref"]
REQUIRED_UNDECLARED = RULES["required-undeclared"]
STRICT = RULES["strict"]

SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean", "null"})
# Methods whose arguments travel in the query string, so they must be scalars.
QUERY_METHODS = frozenset({"GET", "DELETE"})


def params_is_schema(path: tuple, plugin: dict, found: Findings) -> None:
    params = plugin.get("params")
    if not isinstance(params, dict):
        return
    # The Rust validator answers yes/no fast; the errors, rare, come from jsonschema
    # so they read like every other finding. A second JSON Schema engine earns its place
    # here: `make bench` validates 1,000 plugins in a median 0.35 s with it and 1.1 s with
    # jsonschema's is_valid alone, over the 1 s target (measured 2026-12-01, 2 cores).
    errors_found = (
        [] if jsonschema_rs.meta.is_valid(params) else metaschema_validator().iter_errors(params)
    )
    for error in errors_found:
        found.add(
            path + ("params",) + tuple(error.absolute_path),
            PARAMS_NOT_A_SCHEMA,
            f"params is not a valid JSON Schema: {error.message}",
            "fix this keyword so params is a JSON Schema (draft 2020-12)",
        )
    if params.get("type") != "object":
        found.add(
            path + ("params",),
            PARAMS_NOT_OBJECT,
            'params must describe an object of named arguments ("type": "object")',
            'set "type": "object" and list the arguments under "properties"',
        )


def required_are_declared(path: tuple, plugin: dict, found: Findings) -> None:
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
                REQUIRED_UNDECLARED,
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


def no_remote_ref(path: tuple, plugin: dict, found: Findings) -> None:
    for ref_path, ref in _refs(plugin.get("params"), path + ("params",)):
        if not (isinstance(ref, str) and ref.startswith("#")):
            found.add(
                ref_path,
                REMOTE_REF,
                f"$ref {ref!r} points outside this file",
                'inline the schema or put it under params "$defs" and use "#/$defs/NAME"',
            )


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


def query_arguments_are_scalars(path: tuple, plugin: dict, found: Findings) -> None:
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
                QUERY_ARGUMENT_NOT_SCALAR,
                f'argument "{name}" of a {method} tool must be a string, number, integer or '
                "boolean: it travels in the query string",
                f'give "{name}" a scalar "type", or use POST to send a JSON body',
            )


def strict_rules(path: tuple, plugin: dict, found: Findings) -> None:
    if plugin.get("strict") is not True:
        return
    for where, message, fix in strict.violations(plugin.get("params"), path + ("params",)):
        found.add(where, STRICT, message, fix)


def arguments_are_described(path: tuple, plugin: dict, found: Findings) -> None:
    params = plugin.get("params")
    properties = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(properties, dict):
        return
    for name, schema in properties.items():
        if isinstance(schema, dict) and not schema.get("description"):
            found.add(
                path + ("params", "properties", name),
                ARGUMENT_UNDESCRIBED,
                f'argument "{name}" has no description: the model chooses its value from it',
                f'add "description" to "{name}"',
                severity="warning",
            )
