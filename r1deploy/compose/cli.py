"""`r1deploy compose validate FILE...`, `r1deploy compose rules`."""

from __future__ import annotations

import argparse
import sys

from r1deploy.cliconv import ExitCode, add_format, print_findings
from r1deploy.compose.registry import COMPOSE_RULES
from r1deploy.compose.validate import validate_file
from r1deploy.diagnostics import errors, warnings
from r1deploy.rules import print_rules


def register(subparsers) -> None:
    compose = subparsers.add_parser("compose", help="check a rendered compose file")
    verbs = compose.add_subparsers(dest="compose_command", metavar="VERB", required=True)
    validate = verbs.add_parser(
        "validate",
        help="Compose spec schema, then the stack's rules (pinned images, GPU reservation, "
        "Open WebUI wiring, vLLM flags, no secrets, no public model API)",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="compose files (compose.yaml)")
    add_format(validate)
    validate.set_defaults(handler=run_validate)

    rules = verbs.add_parser("rules", help="list the rules validate checks (docs/rules.md)")
    add_format(rules)
    rules.set_defaults(handler=run_rules)


def run_rules(args: argparse.Namespace) -> int:
    print_rules(COMPOSE_RULES, args.format)
    return ExitCode.OK


def run_validate(args: argparse.Namespace) -> int:
    reports = []
    for path in args.files:
        try:
            reports.append(validate_file(path))
        except OSError as exc:
            print(f"r1deploy compose: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return ExitCode.CANNOT_RUN
    valid = all(r.valid for r in reports)
    print_findings(
        [d for r in reports for d in r.diagnostics],
        [
            f"{r.path}: {'valid' if r.valid else 'INVALID'} ({len(errors(r.diagnostics))} errors, "
            f"{len(warnings(r.diagnostics))} warnings)"
            for r in reports
        ],
        args.format,
        {"valid": valid, "files": [r.path for r in reports]},
    )
    return ExitCode.OK if valid else ExitCode.FAILED
