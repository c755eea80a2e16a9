"""`r1deploy compose validate FILE...`."""

from __future__ import annotations

import argparse
import json
import sys

from r1deploy.compose.validate import validate_file
from r1deploy.diagnostics import errors, warnings

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def register(subparsers) -> None:
    compose = subparsers.add_parser("compose", help="check a rendered compose file")
    verbs = compose.add_subparsers(dest="compose_command", metavar="VERB", required=True)
    validate = verbs.add_parser(
        "validate",
        help="Compose spec schema, then the stack's rules (pinned images, GPU reservation, "
        "Open WebUI wiring, vLLM flags, no secrets, no public model API)",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="compose files (compose.yaml)")
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output for people (text) or machines (json)",
    )
    validate.set_defaults(handler=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    reports = []
    for path in args.files:
        try:
            reports.append(validate_file(path))
        except OSError as exc:
            print(f"r1deploy compose: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    if args.format == "json":
        found = [d for r in reports for d in r.diagnostics]
        print(
            json.dumps(
                {
                    "valid": all(r.valid for r in reports),
                    "files": [r.path for r in reports],
                    "errors": len(errors(found)),
                    "warnings": len(warnings(found)),
                    "diagnostics": [d.to_dict() for d in found],
                },
                indent=2,
            )
        )
    else:
        for report in reports:
            for diagnostic in report.diagnostics:
                print(diagnostic)
            verdict = "valid" if report.valid else "INVALID"
            print(
                f"{report.path}: {verdict} ({len(errors(report.diagnostics))} errors, "
                f"{len(warnings(report.diagnostics))} warnings)"
            )
    return EXIT_OK if all(r.valid for r in reports) else EXIT_INVALID
