"""The Compose specification's schema, and keys a mapping repeats."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from importlib import resources

from jsonschema import Draft202012Validator

from r1deploy.compose.registry import RULES
from r1deploy.compose.services import ComposeFile
from r1deploy.compose.source import YamlSource
from r1deploy.diagnostics import Findings

COMPOSE_SCHEMA = RULES["compose-schema"]
DUPLICATE_KEY = RULES["duplicate-key"]


@cache
def compose_schema() -> dict:
    """The Compose specification schema that check-jsonschema vendors and maintains."""
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


@cache
def _schema_validator() -> Draft202012Validator:
    return Draft202012Validator(compose_schema())


def _declared_keys(schema: dict, depth: int = 0) -> tuple[set[str], set[str]]:
    """Property names and patterns a (sub)schema declares, through allOf/anyOf/oneOf/$ref."""
    names = set(schema.get("properties", {}))
    patterns = set(schema.get("patternProperties", {}))
    if depth > 8:
        return names, patterns
    parts = [p for key in ("allOf", "anyOf", "oneOf") for p in schema.get(key, [])]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        parts.append(compose_schema()["$defs"].get(ref.removeprefix("#/$defs/"), {}))
    for part in parts:
        if isinstance(part, dict):
            more_names, more_patterns = _declared_keys(part, depth + 1)
            names |= more_names
            patterns |= more_patterns
    return names, patterns


def duplicate_keys(source: YamlSource, found: Findings) -> None:
    for pointer in source.duplicate_keys:
        found.add_pointer(
            pointer,
            DUPLICATE_KEY,
            f"key {pointer.rsplit('/', 1)[-1]} appears twice",
            "keep one of them: docker compose refuses duplicate keys",
            key=True,
        )


def check(compose: ComposeFile, found: Findings) -> None:
    for error in sorted(
        _schema_validator().iter_errors(compose.document),
        key=lambda e: list(map(str, e.absolute_path)),
    ):
        path = tuple(error.absolute_path)
        if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(
            error.instance, dict
        ):
            # Only keys the schema does not declare: with unevaluatedProperties, an error
            # inside a declared key also marks it "unevaluated", a cascade already reported.
            declared, pattern_texts = _declared_keys(error.schema)
            allowed = sorted(declared)
            patterns = [re.compile(p) for p in pattern_texts]
            unknown = [
                k
                for k in error.instance
                if k not in allowed and not any(p.search(str(k)) for p in patterns)
            ]
            for key in sorted(unknown):
                close = difflib.get_close_matches(str(key), allowed, n=1)
                fix = (
                    f'did you mean "{close[0]}"? Rename the key'
                    if close
                    else "remove it (see https://docs.docker.com/reference/compose-file/)"
                )
                found.add(
                    path + (key,),
                    COMPOSE_SCHEMA,
                    f'"{key}" is not a Compose key here',
                    fix,
                    key=True,
                )
            continue
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        found.add(
            path,
            COMPOSE_SCHEMA,
            f"not valid Compose: {message}",
            "correct it as the Compose specification says: "
            "https://docs.docker.com/reference/compose-file/",
        )
