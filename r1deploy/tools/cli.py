"""`r1deploy tools validate|export|rules`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from r1deploy.cliconv import ExitCode, add_format, print_findings
from r1deploy.diagnostics import errors, warnings
from r1deploy.rules import print_rules
from r1deploy.tools.export import FORMATS, export
from r1deploy.tools.registry import TOOLS_RULES
from r1deploy.tools.validate import Report, validate_files

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
    add_format(validate)
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

    rules = verbs.add_parser("rules", help="list the rules validate checks (docs/rules.md)")
    add_format(rules)
    rules.set_defaults(handler=run_rules)


def run_rules(args: argparse.Namespace) -> int:
    print_rules(TOOLS_RULES, args.format)
    return ExitCode.OK


def _validate(files: list[str]) -> Report | None:
    try:
        return validate_files(files)
    except OSError as exc:
        print(f"r1deploy tools: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return None


def _print_findings(report: Report, stream) -> None:
    found = report.diagnostics
    verdict = "valid" if report.valid else "INVALID"
    summary = (
        f"{', '.join(f.path for f in report.files)}: {len(report.plugins)} plugins, "
        f"{verdict} ({len(errors(found))} errors, {len(warnings(found))} warnings)"
    )
    print_findings(found, [summary], "text", stream=stream)


def run_validate(args: argparse.Namespace) -> int:
    report = _validate(args.files)
    if report is None:
        return ExitCode.CANNOT_RUN
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_findings(report, sys.stdout)
    return ExitCode.OK if report.valid else ExitCode.FAILED


def run_export(args: argparse.Namespace) -> int:
    report = _validate(args.files)
    if report is None:
        return ExitCode.CANNOT_RUN
    if not report.valid:
        _print_findings(report, sys.stderr)
        print("nothing exported: fix the errors above first", file=sys.stderr)
        return ExitCode.FAILED
    text = export(report.plugins, args.format, args.server_url)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return ExitCode.OK
