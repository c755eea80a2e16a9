"""Findings shared by every validator: where, what, and how to fix it.

A ``Diagnostic`` names the file, the JSON pointer (and line/column where the
source is known), says what is wrong and what to do. Validators return lists of
them; the CLI decides how to print them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

import json_source_map

from r1deploy import doclimits
from r1deploy.rules import JSON, Rule

Severity = Literal["error", "warning"]
JSON_SYNTAX = JSON["json-syntax"]
JSON_LIMIT = JSON["json-limit"]


@dataclass(frozen=True)
class Diagnostic:
    file: str
    pointer: str
    rule: str
    message: str
    fix: str = ""
    severity: Severity = "error"
    line: int | None = None
    column: int | None = None

    @property
    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        pointer = f" {self.pointer}:" if self.pointer else ""
        text = f"{self.location}: {self.severity} [{self.rule}]{pointer} {self.message}"
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "error"]


def warnings(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "warning"]


class Findings:
    """Collects the diagnostics of one file, each placed on its line by ``source`` (a
    SourceMap or YamlSource) and referring to a rule of ``registry`` (by id)."""

    def __init__(self, path: str, source, registry: dict[str, Rule]):
        self.path, self.source, self.registry = path, source, registry
        self.items: list[Diagnostic] = []

    def _rule_id(self, rule: Rule) -> str:
        if self.registry.get(rule.id) is not rule:
            raise ValueError(f"rule {rule.id!r} is not an entry of this validator's registry")
        return rule.id

    def add(
        self,
        path: tuple,
        rule: Rule,
        message: str,
        fix: str,
        *,
        severity: Severity | None = None,
        key: bool = False,
    ) -> None:
        """A finding at the value (or, with ``key``, the key) that ``path`` leads to."""
        self.add_pointer(json_pointer(path), rule, message, fix, severity=severity, key=key)

    def add_pointer(
        self,
        pointer: str,
        rule: Rule,
        message: str,
        fix: str,
        *,
        severity: Severity | None = None,
        key: bool = False,
    ) -> None:
        line, column = self.source.position(pointer, key=key)
        self.items.append(
            Diagnostic(
                self.path,
                pointer,
                self._rule_id(rule),
                message,
                fix,
                severity or rule.severity,
                line,
                column,
            )
        )

    def add_line(
        self, rule: Rule, message: str, fix: str, line: int, *, severity: Severity | None = None
    ) -> None:
        """A finding in the text itself, at a line (no pointer: it is no one value's)."""
        self.items.append(
            Diagnostic(
                self.path,
                "",
                self._rule_id(rule),
                message,
                fix,
                severity or rule.severity,
                line,
                None,
            )
        )


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 pointer for a path of keys and indexes ('' is the document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


class SourceMap:
    """Maps JSON pointers of a parsed document back to 1-based lines and columns."""

    def __init__(self, text: str):
        self._text = text
        self._map: dict | None = None

    @property
    def _entries(self) -> dict:
        # Built on first use: a valid file never pays for the position map.
        if self._map is None:
            try:
                self._map = json_source_map.calculate(self._text)
            except Exception:  # the map is a convenience: never let it hide the real finding
                self._map = {}
        return self._map

    def position(self, pointer: str, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of the value at ``pointer`` (or of its key when ``key``).

        Falls back to the nearest enclosing value that the map knows.
        """
        while True:
            entry = self._entries.get(pointer)
            if entry is not None:
                location = entry.key_start if key and entry.key_start else entry.value_start
                return location.line + 1, location.column + 1
            if not pointer:
                return None, None
            pointer = pointer.rsplit("/", 1)[0]
            key = False


def load_json(
    path: str, text: str, max_values: int = doclimits.MAX_VALUES
) -> tuple[object | None, SourceMap | None, list[Diagnostic]]:
    """Parse ``text``; a syntax error becomes a diagnostic with line and column.

    Objects that repeat a key come back as doclimits.DuplicateKeysDict, for the rules
    to report; text past the limits of doclimits is refused before it is parsed.
    """
    shape = doclimits.json_shape_error(text, max_values=max_values)
    if shape:
        where = json_pointer(shape.path), JSON_LIMIT.id, shape.problem, shape.fix, "error"
        return None, None, [Diagnostic(path, *where, *_line_column(text, shape.offset))]
    try:
        document = json.loads(text, object_pairs_hook=doclimits.object_pairs)
    except json.JSONDecodeError as exc:
        return None, None, [_syntax_error(path, exc.msg, exc.lineno, exc.colno)]
    except ValueError as exc:
        # An integer literal longer than Python converts (sys.get_int_max_str_digits()).
        digits = re.search(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)
        line, column = _line_column(text, digits.start()) if digits else (None, None)
        problem = str(exc).split(";")[0]
        fix = "write the number with fewer digits, or as a string"
        return None, None, [_syntax_error(path, problem, line, column, fix)]
    return document, SourceMap(text), []


def _syntax_error(
    path: str,
    message: str,
    line: int | None,
    column: int | None,
    fix: str = "correct the JSON syntax at this line and column "
    "(a missing comma, quote or bracket is the usual cause)",
) -> Diagnostic:
    message = f"invalid JSON: {message}"
    return Diagnostic(path, "", JSON_SYNTAX.id, message, fix, "error", line, column)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
