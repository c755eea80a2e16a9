"""OpenAI strict-mode rules for a tool's argument schema.

In strict mode the server holds the model's arguments to the schema exactly
(vLLM 0.32 does so only for tools marked ``"strict": true``). That needs every
object to list all its properties as required and to forbid extra ones, and it
rules out keywords the structured-output engines do not implement.
"""

from __future__ import annotations

from collections.abc import Iterator

# Keywords the strict structured-output path does not support (OpenAI's list,
# which vLLM's grammar backends follow or reject outright).
UNSUPPORTED_KEYWORDS = frozenset(
    {
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "dependentRequired",
        "dependentSchemas",
        "if",
        "then",
        "else",
        "not",
        "$dynamicRef",
        "$dynamicAnchor",
    }
)

# Keywords whose value is a schema, or a map / list of schemas, to descend into.
_SCHEMA_VALUED = ("items", "additionalProperties", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


def violations(schema: object, path: tuple = ()) -> Iterator[tuple[tuple, str, str]]:
    """Yield ``(path, message, fix)`` for each strict-mode rule ``schema`` breaks."""
    if not isinstance(schema, dict):
        return
    for keyword in sorted(UNSUPPORTED_KEYWORDS & schema.keys()):
        yield (
            path + (keyword,),
            f'keyword "{keyword}" is not supported in strict mode',
            f'remove "{keyword}" or set "strict": false on this tool',
        )
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            yield (
                path,
                'an object in a strict tool must set "additionalProperties": false',
                'add "additionalProperties": false here, or set "strict": false on this tool',
            )
        if isinstance(properties, dict):
            required = schema.get("required", [])
            missing = [name for name in properties if name not in required]
            if missing:
                yield (
                    path + ("required",),
                    "strict mode needs every property required; not required: "
                    + ", ".join(f'"{m}"' for m in missing),
                    'list them in "required" (make optional ones nullable: '
                    '"type": ["string", "null"]), or set "strict": false on this tool',
                )
    for keyword in _SCHEMA_MAPS:
        children = schema.get(keyword)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from violations(child, path + (keyword, name))
    for keyword in _SCHEMA_LISTS:
        children = schema.get(keyword)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from violations(child, path + (keyword, index))
    for keyword in _SCHEMA_VALUED:
        child = schema.get(keyword)
        if isinstance(child, dict):
            yield from violations(child, path + (keyword,))


def is_compatible(schema: object) -> bool:
    return next(violations(schema), None) is None
