"""What a document from outside (tools file, compose file, tool arguments) is held to
before anything walks it: nesting depth, number of values, finite numbers, unique keys.

Python's json parser, jsonschema and this package's rules recurse once (or a few times)
per level, so 100k nested brackets end in RecursionError; and every finding costs, so a
1 MiB file of half a million values kept a validator busy for half a minute. Both are
checked on the text, before parsing, where the offset gives the line of the problem.
JSON has no NaN or Infinity, but Python's parser accepts them (and turns 1e999 into inf);
they compare false with every bound, so no schema refuses them. Duplicate keys are legal
for the parser, which keeps the last one without a word.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

# Tools files and compose files nest about ten levels; tool arguments fewer.
MAX_NESTING_DEPTH = 64
# Values in one document, aliases expanded: the rendered compose files hold about 200,
# tool arguments a handful.
MAX_VALUES = 10_000
# A tools file holds about 21 values a plugin: 1,000 plugins (the benchmark's file) are
# ~21,000; the limit leaves room for several times that, and a 1 MiB file of bare values
# (half a million) is still refused before parsing.
MAX_TOOLS_FILE_VALUES = 100_000

# A string (an unterminated one runs to the end, which keeps the scan linear), or a
# character that opens, closes or separates.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{},:]', re.S)


@dataclass(frozen=True)
class ShapeError:
    """Where a JSON text goes past a limit: the path to it and its offset in the text."""

    problem: str
    fix: str
    path: tuple
    offset: int


def too_deep(depth: int) -> tuple[str, str]:
    return (
        f"arrays and objects nest deeper than {depth} levels",
        "flatten the structure (MAX_NESTING_DEPTH in r1deploy/doclimits.py)",
    )


def too_many(values: int) -> tuple[str, str]:
    return (
        f"the document holds more than {values} values",
        "split it, or check that this is the file you meant "
        "(the limits are in r1deploy/doclimits.py)",
    )


def json_shape_error(
    text: str, max_depth: int = MAX_NESTING_DEPTH, max_values: int = MAX_VALUES
) -> ShapeError | None:
    """The first place where ``text`` nests deeper than ``max_depth`` or holds more than
    ``max_values`` values, or None. Runs before json.loads, on any text."""
    opens = text.count("[") + text.count("{")
    if opens <= max_depth and opens + text.count(",") <= max_values:
        return None
    path: list[str | int] = []  # per open container: the index or key being read
    values = 0  # opened containers and separators: a lower bound of the values
    last_string = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string = token
            continue
        if token in "[{,":
            values += 1
            if values > max_values:
                return ShapeError(*too_many(max_values), tuple(path), match.start())
        if token in "[{":
            if len(path) >= max_depth:
                return ShapeError(*too_deep(max_depth), tuple(path), match.start())
            path.append(0 if token == "[" else "")
        elif token in "]}":
            if path:
                path.pop()
        elif token == "," and path and isinstance(path[-1], int):
            path[-1] += 1
        elif token == ":" and path and isinstance(path[-1], str):
            path[-1] = _key(last_string)
    return None


def _key(token: str) -> str:
    try:
        return json.loads(token)
    except ValueError:
        return token.strip('"')


class DuplicateKeysDict(dict):
    """A JSON object whose text repeated keys; ``duplicates`` lists them (the last won)."""

    duplicates: list[str]


def object_pairs(pairs: list[tuple[str, object]]) -> dict:
    """json.loads object_pairs_hook that remembers repeated keys instead of hiding them."""
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    marked = DuplicateKeysDict(result)
    seen: set[str] = set()
    marked.duplicates = [k for k, _ in pairs if k in seen or seen.add(k)]
    return marked


def walk(document: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    """(path, value) of every value in the document, containers first."""
    yield path, document
    if isinstance(document, dict):
        for key, value in document.items():
            yield from walk(value, path + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from walk(value, path + (index,))


def non_finite_numbers(document: object) -> Iterator[tuple]:
    """Paths of NaN, Infinity and -Infinity (and overflowing literals such as 1e999)."""
    for path, value in walk(document):
        if isinstance(value, float) and not math.isfinite(value):
            yield path


def duplicate_keys(document: object) -> Iterator[tuple]:
    """Paths of keys that appear more than once in their object (needs object_pairs)."""
    for path, value in walk(document):
        if isinstance(value, DuplicateKeysDict):
            for key in value.duplicates:
                yield path + (key,)
