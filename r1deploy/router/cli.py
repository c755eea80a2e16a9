"""`r1deploy router command`: the router's argv for a worker list, as the stack render
builds it (roles/r1_stack runs it on the controller), so that a duplicate worker or a bad
URL fails the render with its reason instead of the router at run time."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from r1deploy.cliconv import ExitCode, cannot_run
from r1deploy.router.command import RouterConfigError, RouterSettings, router_command

SETTINGS_FIELDS = {field.name for field in dataclasses.fields(RouterSettings)}


def register(subparsers) -> None:
    router = subparsers.add_parser("router", help="the vLLM router in front of replicas")
    verbs = router.add_subparsers(dest="router_command", metavar="VERB", required=True)
    command = verbs.add_parser(
        "command",
        help="print the router's argv (JSON) for the workers and settings read on stdin",
        description=(
            'Reads {"workers": [URL, ...], "settings": {...}} (JSON) on stdin; settings '
            f"keys: {', '.join(sorted(SETTINGS_FIELDS))}. Prints the vllm-router argv as a "
            "JSON list, or says what cannot work (exit 2)."
        ),
    )
    command.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    try:
        given = json.loads(sys.stdin.read(1_000_000))
    except json.JSONDecodeError as exc:
        return cannot_run("router command", f"stdin is not JSON: {exc}")
    if not isinstance(given, dict) or not isinstance(given.get("settings", {}), dict):
        return cannot_run("router command", 'stdin must be {"workers": [...], "settings": {...}}')
    settings = given.get("settings", {})
    unknown = sorted(set(settings) - SETTINGS_FIELDS)
    if unknown:
        return cannot_run(
            "router command",
            f"unknown router setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(SETTINGS_FIELDS))}",
        )
    try:
        argv = router_command(given.get("workers") or [], RouterSettings(**settings))
    except RouterConfigError as exc:
        return cannot_run("router command", str(exc))
    print(json.dumps(argv))
    return ExitCode.OK
