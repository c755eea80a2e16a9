"""`r1deploy webui reconcile --stack DIR [--json]`."""

from __future__ import annotations

import argparse
import json
import sys

from r1deploy.stackdir import StackDirError
from r1deploy.webui.client import WebUIError
from r1deploy.webui.reconcile import reconcile_stack

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers) -> None:
    webui = subparsers.add_parser("webui", help="Open WebUI admin tasks")
    verbs = webui.add_subparsers(dest="webui_command", metavar="VERB", required=True)
    rec = verbs.add_parser(
        "reconcile",
        help="make the running Open WebUI match the stack (backends, tool servers, signup, "
        "default model, the model's entry)",
    )
    rec.add_argument("--stack", required=True, metavar="DIR", help="rendered stack directory")
    rec.add_argument("--url", help="Open WebUI URL (default: the stack's settings.json)")
    rec.add_argument("--check", action="store_true", help="report what differs, change nothing")
    rec.add_argument(
        "--no-verify", action="store_true", help="skip asking Open WebUI to fetch each tool spec"
    )
    rec.add_argument("--json", action="store_true", help="one JSON object (changed, ok, items)")
    rec.set_defaults(handler=run_reconcile)


def run_reconcile(args: argparse.Namespace) -> int:
    try:
        outcome = reconcile_stack(
            args.stack, url=args.url, apply=not args.check, verify=not args.no_verify
        )
    except (StackDirError, WebUIError) as exc:
        print(f"r1deploy webui reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        for item in outcome.items:
            state = "FAILED" if not item.ok else ("changed" if item.changed else "ok")
            print(f"{state:8} {item.item}: {item.detail}")
    return EXIT_OK if outcome.ok else EXIT_FAILED
