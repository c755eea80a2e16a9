"""`r1deploy tools validate|export`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from r1deploy.diagnostics import errors, warnings
from r1deploy.tools.export import FORMATS, export
from r1deploy.tools.validate import Report, validate_files

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
DEFAULT_FILE = "tools.json"


def register(subparsers) -> None:
    tools = subparsers.add_parser("tools", help="validate and export tools.json (agent plugins)")
    verbs = tools.add_subparsers(dest="tools_command", metavar="VERB", required=True)

    validate = verbs.add_parser("validate", help="check tools files against the format and rules")
    validate.add_argument(
        "files",
        nargs="*",
        default=[DEFAULT_FILE],
        metavar="FILE",
        help=f"tools files (default: {DEFAULT_FILE})",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output for people (text) or machines (json)",
    )
    validate.set_defaults(handler=run_validate)

    exporter = verbs.add_parser("export", help="print the tools in the form a server takes")
    exporter.add_argument(
        "--format",
        choices=FORMATS,
        required=True,
        help="openai: vLLM's `tools` array; openapi: a tool-server document",
    )
    exporter.add_argument("files", nargs="*", default=[DEFAULT_FILE], metavar="FILE")
    exporter.add_argument("--server-url", help="openapi only: the gateway's URL for `servers`")
    exporter.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    exporter.set_defaults(handler=run_export)


def _validate(files: list[str]) -> Report | None:
    try:
        return validate_files(files)
    except OSError as exc:
        print(f"r1deploy tools: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return None


def _print_findings(report: Report, stream) -> None:
    for diagnostic in report.diagnostics:
        print(diagnostic, file=stream)
    found = report.diagnostics
    verdict = "valid" if report.valid else "INVALID"
    print(
        f"{', '.join(f.path for f in report.files)}: {len(report.plugins)} plugins, {verdict} "
        f"({len(errors(found))} errors, {len(warnings(found))} warnings)",
        file=stream,
    )


def run_validate(args: argparse.Namespace) -> int:
    report = _validate(args.files)
    if report is None:
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_findings(report, sys.stdout)
    return EXIT_OK if report.valid else EXIT_INVALID


def run_export(args: argparse.Namespace) -> int:
    report = _validate(args.files)
    if report is None:
        return EXIT_USAGE
    if not report.valid:
        _print_findings(report, sys.stderr)
        print("nothing exported: fix the errors above first", file=sys.stderr)
        return EXIT_INVALID
    text = export(report.plugins, args.format, args.server_url)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK
