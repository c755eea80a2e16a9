"""Rules of the validators, declared once each in a registry tuple.

A :class:`Rule` is what a finding refers to: its id (what ``Diagnostic.rule`` carries), the
family it belongs to, one line on what it catches, and its default severity. Each validator
keeps one registry (``r1deploy.compose.registry.COMPOSE_RULES``,
``r1deploy.tools.registry.TOOLS_RULES``); ``r1deploy compose rules`` and ``r1deploy tools
rules`` print them and docs/rules.md is generated from them.

The rules of reading a file come before any validator's own, so they are declared here and
listed by every registry whose validator reads files that way.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    id: str
    family: str
    description: str
    severity: Severity = "error"

    def to_dict(self) -> dict:
        return asdict(self)


def index(registry: tuple[Rule, ...]) -> dict[str, Rule]:
    """The registry by rule id; a registry that declares an id twice is a programming error."""
    by_id: dict[str, Rule] = {}
    for rule in registry:
        if rule.id in by_id:
            raise ValueError(f"rule {rule.id} is declared twice")
        by_id[rule.id] = rule
    return by_id


# r1deploy/inputfile.py: every validator reads its file through it.
INPUT_RULES: tuple[Rule, ...] = (
    Rule(
        "input-not-a-file",
        "input",
        "a FIFO, device or socket, not a regular file: not read (a FIFO would block)",
    ),
    Rule("input-too-large", "input", "the file is larger than MAX_INPUT_BYTES (1 MiB): not read"),
    Rule("input-encoding", "input", "the file is not UTF-8, named at its first bad byte"),
)
# r1deploy/diagnostics.py load_json: the JSON files' parser.
JSON_RULES: tuple[Rule, ...] = (
    Rule("json-syntax", "syntax", "not JSON: the line and column of the syntax error"),
    Rule(
        "json-limit",
        "syntax",
        "nested deeper or holding more values than r1deploy/doclimits.py allows: not parsed",
    ),
)
INPUT = index(INPUT_RULES)
JSON = index(JSON_RULES)


def print_rules(registry: tuple[Rule, ...], fmt: str, stream=None) -> None:
    """The registry for people (one rule a line: id, severity, family, what it catches) or
    machines (``{"rules": [{id, family, description, severity}, ...]}``)."""
    stream = stream or sys.stdout
    if fmt == "json":
        print(json.dumps({"rules": [r.to_dict() for r in registry]}, indent=2), file=stream)
        return
    width = max(len(r.id) for r in registry)
    family_width = max(len(r.family) for r in registry)
    for rule in registry:
        print(
            f"{rule.id:<{width}}  {rule.severity:<7}  {rule.family:<{family_width}}  "
            f"{rule.description}",
            file=stream,
        )
