"""`r1deploy router command`: the router's argv for a worker list, as the stack render
builds it (roles/r1_stack runs it on the controller), so that a duplicate worker or a bad
URL fails the render with its reason instead of the router at run time."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from r1deploy.cliconv import NO_STACK_DIR, ExitCode, add_stack_dir, cannot_run
from r1deploy.router.command import RouterConfigError, RouterSettings, router_command
from r1deploy.router.rolling import Replica, RollingError, rolling_restart
from r1deploy.stackdir import StackDir, StackDirError

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
    rolling = verbs.add_parser(
        "rolling-restart",
        help="restart the replicas one at a time behind the router (none of them fails a request)",
        description=(
            "For each replica of the deployed stack (settings.json router.replicas), in turn: "
            "out of the router's rotation, drained, restarted (the native runtime's r1ctl), "
            "smoked on its own URL, back in. Stops at the first replica that fails, leaving "
            "it out of rotation and the others serving."
        ),
    )
    add_stack_dir(rolling, help="the deployed stack's directory (on the host)")
    rolling.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="only this replica's service (repeatable; default: every replica, in order)",
    )
    rolling.set_defaults(handler=_rolling_restart)


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


def _rolling_restart(args: argparse.Namespace) -> int:
    verb = "router rolling-restart"
    if not args.stack_dir:
        return cannot_run(verb, NO_STACK_DIR)
    try:
        stack = StackDir.load(args.stack_dir)
    except StackDirError as exc:
        return cannot_run(verb, str(exc))
    router = stack.settings.get("router") or {}
    if not router.get("enabled"):
        return cannot_run(
            verb,
            f"{args.stack_dir}/settings.json has no router (one replica): restart the "
            "model server with make deploy, or deploy with r1_stack_vllm_replicas 2 or more",
        )
    if stack.settings.get("runtime") != "native":
        return cannot_run(verb, "the native runtime restarts replicas; this stack is not native")
    replicas = [Replica(r["service"], r["url"]) for r in router["replicas"]]
    unknown = sorted(set(args.service) - {r.service for r in replicas})
    if unknown:
        return cannot_run(
            verb,
            f"no replica {', '.join(unknown)}; the replicas are "
            f"{', '.join(r.service for r in replicas)}",
        )
    if args.service:
        replicas = [r for r in replicas if r.service in args.service]
    ctl = Path(args.stack_dir) / "native" / "r1ctl"

    def restart(service: str) -> None:
        subprocess.run([str(ctl), "restart", service], check=True, timeout=300)

    def smoke(url: str) -> bool:
        from r1deploy.cli import main

        argv = [
            "smoke",
            "--stack-dir",
            str(args.stack_dir),
            "--vllm",
            url,
            "--inside",
            "--only",
            "vllm.",
            "--wait-ready",
            "60",
        ]
        return main(argv) == ExitCode.OK

    def log(line: str) -> None:
        print(line, flush=True)

    try:
        rolling_restart(router["url"], replicas, restart, smoke, log)
    except (RollingError, subprocess.SubprocessError) as exc:
        print(f"r1deploy {verb}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    log(f"rolling restart done: {len(replicas)} replica(s), each smoked and back in rotation")
    return ExitCode.OK
