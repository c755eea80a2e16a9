"""The `r1deploy` command: a thin layer that parses, calls the library and prints.

Each feature package exposes ``register(subparsers)`` in its ``cli`` module; the
registered handler returns the process exit code, and every verb follows one convention
(r1deploy/cliconv.py: --stack-dir, --format text|json, ExitCode 0 ok / 1 findings or
failures / 2 could not run, secrets from files or the environment only).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from r1deploy import __version__
from r1deploy.cliconv import ExitCode

# Feature packages that contribute verbs, in the order `--help` lists them.
COMMAND_MODULES = [
    "r1deploy.tools.cli",
    "r1deploy.compose.cli",
    "r1deploy.gateway.cli",
    "r1deploy.agent.cli",
    "r1deploy.webui.cli",
    "r1deploy.smoke.cli",
    "r1deploy.doctor.cli",
    "r1deploy.top.cli",
    "r1deploy.testmodel.cli",
    "r1deploy.model.cli",
    "r1deploy.bench.cli",
    "r1deploy.llamacpp.cli",
    "r1deploy.export.cli",
    "r1deploy.router.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1deploy",
        description="Validate, export, serve, smoke-test and benchmark an r1deploy stack.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Findings quote their input, and valid JSON or YAML can hold a lone surrogate
    # ("\ud800") that UTF-8 cannot write: escape it rather than die printing.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.CANNOT_RUN
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
