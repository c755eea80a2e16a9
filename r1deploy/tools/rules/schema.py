"""The file-format schema (r1deploy/tools/tools.schema.json): unknown and missing keys, and
each failed keyword as ``schema-<keyword>``, said in the words of the field it concerns."""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources

from jsonschema import Draft202012Validator

from r1deploy.diagnostics import Findings
from r1deploy.tools.registry import RULES

UNKNOWN_KEY = RULES["unknown-key"]
MISSING_KEY = RULES["missing-key"]


@cache
def file_schema() -> dict:
    text = resources.files("r1deploy.tools").joinpath("tools.schema.json").read_text()
    return json.loads(text)


@cache
def _file_validator() -> Draft202012Validator:
    return Draft202012Validator(file_schema())


@cache
def metaschema_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def check(document: object, found: Findings) -> None:
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
                found.add(path + (key,), UNKNOWN_KEY, f'unknown key "{key}"', fix, key=True)
        elif keyword == "required":
            missing = error.message.split("'")[1]
            found.add(
                path,
                MISSING_KEY,
                f'missing required key "{missing}"',
                f'add "{missing}" (see the format in r1deploy/tools/tools.schema.json)',
            )
        else:
            found.add(path, RULES[f"schema-{keyword}"], *_explain(path, keyword, error))


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
