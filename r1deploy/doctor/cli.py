"""`r1deploy doctor --stack-dir DIR [--format text|json] [--only PREFIX] [--secrets-dir DIR]`.

Exit codes (r1deploy/cliconv.py): 0 every check passed (warnings and skips allowed), 1 a check
failed, 2 could not run (no stack directory, no settings.json, --only matches nothing).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from r1deploy.cliconv import NO_STACK_DIR, ExitCode, add_format, add_stack_dir, cannot_run
from r1deploy.doctor.checks import DOCTOR_CHECKS
from r1deploy.doctor.core import FAIL, GIB, DoctorContext, run_checks, summary, text_line, to_json
from r1deploy.stackdir import StackDir, StackDirError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="diagnose a live stack and say the fix (docs/doctor.md)",
        description="Check a deployed stack (its services, logs, flags, Open WebUI's model "
        "entry and configuration, the tools' upstreams, the controller's secrets, disk, "
        "certificate, clock, the NVIDIA driver and container toolkit); for each problem, "
        "the cause and the fix.",
    )
    add_stack_dir(parser)
    add_format(parser)
    parser.add_argument(
        "--only",
        metavar="PREFIX",
        action="append",
        help="run only the checks whose id starts with PREFIX (repeatable): "
        + ", ".join(c.id for c in DOCTOR_CHECKS),
    )
    parser.add_argument(
        "--min-free-gib",
        type=float,
        default=5.0,
        metavar="GIB",
        help="disk.free warns below this many GiB free (default 5; fails below a fifth of it)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="per-request timeout (default 5)",
    )
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        metavar="DIR",
        help="the controller's secrets/<host>/ of this stack: secrets.controller_match "
        "compares each secret there with the host's (values never shown); run where both "
        "are readable",
    )
    parser.add_argument(
        "--logs-dir",
        type=Path,
        metavar="DIR",
        help="docker runtime: read each service's log from DIR/<service>.log instead of "
        "`docker compose logs` (make doctor saves them there when the doctor runs in a "
        "container)",
    )
    parser.set_defaults(handler=run)


def _cannot_run(message: str) -> int:
    return cannot_run("doctor", message)


def run(args) -> int:
    if not args.stack_dir:
        return _cannot_run(NO_STACK_DIR)
    try:
        stack = StackDir.load(args.stack_dir)
    except StackDirError as exc:
        return _cannot_run(str(exc))
    checks = [
        c for c in DOCTOR_CHECKS if not args.only or any(c.id.startswith(p) for p in args.only)
    ]
    if not checks:
        return _cannot_run(
            f"--only {' '.join(args.only)} matches no check; the checks: "
            + ", ".join(c.id for c in DOCTOR_CHECKS)
        )
    ctx = DoctorContext(
        stack,
        timeout_s=args.timeout,
        min_free_bytes=int(args.min_free_gib * GIB),
        secrets_dir=args.secrets_dir,
        logs_dir=args.logs_dir,
    )
    table = sys.stderr if args.format == "json" else sys.stdout
    start = time.perf_counter()
    results = run_checks(checks, ctx, on_result=lambda r: text_line(r, table))
    wall_s = time.perf_counter() - start
    exit_code = ExitCode.FAILED if any(r.status == FAIL for r in results) else ExitCode.OK
    print(summary(results, wall_s), file=table, flush=True)
    if args.format == "json":
        print(to_json(results, wall_s, exit_code, str(stack.path)))
    return exit_code
