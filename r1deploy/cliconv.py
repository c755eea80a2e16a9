"""The one convention every `r1deploy` verb follows (as check-jsonschema's CLI does):

- ``--stack-dir DIR``: the rendered stack directory (``--stack`` still works, hidden);
- ``--format text|json``: people or machines (``--json`` still works, hidden, for ``json``);
- exit codes: ``ExitCode.OK`` 0, ``FAILED`` 1 (findings, failed checks), ``CANNOT_RUN`` 2
  (usage, unreadable input, nothing reachable);
- secrets only from files or the environment, never from flags (``ps`` shows arguments):
  ``secret_from(file, env_name)``;
- findings printed by one reporter for text and JSON (``print_findings``).
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

# Standard library only at import: `r1deploy testmodel` runs in the vLLM image, which has
# none of the package's dependencies.


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    CANNOT_RUN = 2


def add_stack_dir(
    parser: argparse.ArgumentParser,
    *,
    required: bool = False,
    help: str = "rendered stack directory (docs/stack-dir.md)",
) -> None:
    parser.add_argument(
        "--stack-dir", "--stack", dest="stack_dir", metavar="DIR", required=required, help=help
    )


# What a verb that needs a deployed stack says when it is given none.
NO_STACK_DIR = (
    "give --stack-dir DIR: the deployed stack's directory (on the host: r1_stack_dir, "
    "/opt/r1deploy by default)"
)


def cannot_run(verb: str, message: str) -> int:
    """``r1deploy VERB: MESSAGE`` on stderr; ExitCode.CANNOT_RUN."""
    print(f"r1deploy {verb}: {message}", file=sys.stderr)
    return ExitCode.CANNOT_RUN


def add_format(parser: argparse.ArgumentParser, *, default: str = "text") -> None:
    """``--format text|json``, with ``--json`` kept as a hidden alias for ``--format json``."""
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default=default,
        help="output for people (text) or machines (json)",
    )
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help=argparse.SUPPRESS
    )


class SecretError(ValueError):
    """A secret could not be read: which file or variable, and the fix."""


def secret_from(file: str | None, env_name: str | None, what: str) -> str | None:
    """A secret from a file (stripped; must not be readable by others) or, failing that,
    from the environment variable ``env_name``; None when neither gives one."""
    if file:
        path = Path(file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read the {what} file {file}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"the {what} file {file} is empty")
        return value
    if env_name:
        return os.environ.get(env_name) or None
    return None


def print_findings(
    findings: Iterable, summaries: list[str], fmt: str, extra: dict | None = None, stream=None
) -> None:
    """Findings (r1deploy.diagnostics.Diagnostic) as text lines, each naming file, line, rule
    and fix, followed by one summary line per input; or as one JSON object."""
    from r1deploy.diagnostics import errors, warnings

    stream = stream or sys.stdout
    found = list(findings)
    if fmt == "json":
        print(
            json.dumps(
                {
                    **(extra or {}),
                    "errors": len(errors(found)),
                    "warnings": len(warnings(found)),
                    "diagnostics": [d.to_dict() for d in found],
                },
                indent=2,
            ),
            file=stream,
        )
        return
    for diagnostic in found:
        print(diagnostic, file=stream)
    for line in summaries:
        print(line, file=stream)
