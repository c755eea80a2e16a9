"""`r1deploy webui reconcile --stack DIR [--json]`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from r1deploy.cliconv import ExitCode, add_format, add_stack_dir
from r1deploy.stackdir import StackDir, StackDirError
from r1deploy.webui.client import WebUIClient, WebUIError
from r1deploy.webui.reconcile import reconcile_stack

EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.CANNOT_RUN


def register(subparsers) -> None:
    webui = subparsers.add_parser("webui", help="Open WebUI admin tasks")
    verbs = webui.add_subparsers(dest="webui_command", metavar="VERB", required=True)
    rec = verbs.add_parser(
        "reconcile",
        help="make the running Open WebUI match the stack (backends, tool servers, signup, "
        "default model, the model's entry)",
    )
    add_stack_dir(rec, required=True)
    rec.add_argument("--url", help="Open WebUI URL (default: the stack's settings.json)")
    rec.add_argument("--check", action="store_true", help="report what differs, change nothing")
    rec.add_argument(
        "--no-verify", action="store_true", help="skip asking Open WebUI to fetch each tool spec"
    )
    add_format(rec)
    rec.set_defaults(handler=run_reconcile)

    password = verbs.add_parser(
        "set-admin-password",
        help="change the admin's password in the running Open WebUI (make rotate-secrets)",
    )
    add_stack_dir(password, required=True)
    password.add_argument("--url", help="Open WebUI URL (default: the stack's settings.json)")
    password.set_defaults(handler=run_set_admin_password)


# The new password comes from the environment, never the command line (ps shows arguments).
NEW_PASSWORD_ENV = "R1DEPLOY_NEW_ADMIN_PASSWORD"


def run_set_admin_password(args: argparse.Namespace) -> int:
    """From the password in the stack's .env to the one in $R1DEPLOY_NEW_ADMIN_PASSWORD. A
    rotation interrupted after this step finds the new one already set: that is success."""
    new = os.environ.get(NEW_PASSWORD_ENV, "")
    if len(new) < 12:
        print(
            f"r1deploy webui set-admin-password: set {NEW_PASSWORD_ENV} to the new password "
            "(12 characters or more)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        stack = StackDir.load(args.stack_dir)
        email = stack.env.get("WEBUI_ADMIN_EMAIL") or stack.setting("webui", "admin_email")
        current = stack.secret("WEBUI_ADMIN_PASSWORD")
        client = WebUIClient(args.url or stack.setting("webui", "url"))
        try:
            client.sign_in(email, new)
            print(f"{email}: the new password is already set")
            return EXIT_OK
        except WebUIError:
            client.sign_in(email, current)
        client.change_password(current, new)
    except (StackDirError, WebUIError) as exc:
        print(f"r1deploy webui set-admin-password: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{email}: password changed")
    return EXIT_OK


def run_reconcile(args: argparse.Namespace) -> int:
    try:
        outcome = reconcile_stack(
            args.stack_dir, url=args.url, apply=not args.check, verify=not args.no_verify
        )
    except (StackDirError, WebUIError) as exc:
        print(f"r1deploy webui reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        for item in outcome.items:
            state = "FAILED" if not item.ok else ("changed" if item.changed else "ok")
            print(f"{state:8} {item.item}: {item.detail}")
    return EXIT_OK if outcome.ok else EXIT_FAILED
