"""`r1deploy smoke`: check a deployed stack against its real servers.

Exit codes: 0 every check passed (skips allowed), 1 some failed or warned (a promise it could
not check, such as the API key with no key given; --allow-warnings makes those 0), 2 could
not run (usage, bad stack directory, or no server reachable at all).
"""

from __future__ import annotations

import sys
import time

from r1deploy.cliconv import ExitCode, add_format, add_stack_dir
from r1deploy.smoke.checks import CHECKS, Context
from r1deploy.smoke.config import ConfigError, load_config
from r1deploy.smoke.report import summary, table_line, to_json, write_junit
from r1deploy.smoke.runner import FAIL, PASS, WARN, run_checks
from r1deploy.smoke.wait import wait_ready

EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.CANNOT_RUN


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "smoke",
        help="smoke-test a deployed stack (vLLM, Open WebUI, tool gateway)",
        description="Run named checks against the real servers of a stack. Endpoints and "
        "credentials come from a rendered stack directory (.env + settings.json) and/or flags "
        "(flags win).",
    )
    add_stack_dir(parser)
    parser.add_argument("--vllm", metavar="URL", help="vLLM base URL (http://host:8000)")
    parser.add_argument("--vllm-key-file", metavar="FILE", help="file holding the vLLM API key")
    parser.add_argument("--model", help="served model name to expect")
    parser.add_argument("--max-model-len", type=int, help="max_model_len to expect")
    parser.add_argument("--webui", metavar="URL", help="Open WebUI base URL")
    parser.add_argument("--admin-email", help="Open WebUI admin email")
    parser.add_argument(
        "--admin-password-file", metavar="FILE", help="file holding the Open WebUI admin password"
    )
    parser.add_argument("--gateway", metavar="URL", help="tool gateway URL (enables its checks)")
    parser.add_argument("--gateway-key-file", metavar="FILE", help="file holding the gateway key")
    parser.add_argument("--tools", metavar="FILE", help="tools.json for the tool-call check")
    parser.add_argument(
        "--tool", metavar="NAME", help="tool the tool-call check asks for (default: the first)"
    )
    parser.add_argument(
        "--only",
        metavar="PREFIX",
        action="append",
        help="run only checks whose name starts with PREFIX (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="per-request timeout (default 60)",
    )
    parser.add_argument(
        "--wait-ready",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS, with backoff, for the health endpoints",
    )
    parser.add_argument(
        "--quality",
        action="store_true",
        help="also ask the product guide's worked problem (real model only)",
    )
    parser.add_argument(
        "--inside",
        action="store_true",
        help="check the services behind the front door directly (diagnosis); "
        "default with a front door: through it, as people reach it",
    )
    parser.add_argument(
        "--allow-warnings",
        action="store_true",
        help="exit 0 when checks only warn (e.g. no API key given to check auth)",
    )
    add_format(parser)
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML for CI")
    parser.set_defaults(handler=run)


def _health_endpoints(config) -> dict[str, str]:
    """Where --wait-ready waits: each service's /health, on the inside when there is a
    front door (it hides the model server's /health, and Open WebUI's is its own)."""
    endpoints = {}
    if config.vllm_url:
        endpoints["vLLM"] = config.health_url or f"{config.vllm_url}/health"
    if config.webui_url:
        endpoints["Open WebUI"] = config.webui_health_url or f"{config.webui_url}/health"
    if config.gateway_enabled and config.gateway_url:
        endpoints["tool gateway"] = f"{config.gateway_url}/health"
    return endpoints


def run(args) -> int:
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"r1deploy smoke: {exc}", file=sys.stderr)
        return EXIT_USAGE
    table = sys.stderr if args.format == "json" else sys.stdout
    ctx = Context(config)
    start = time.perf_counter()
    if args.wait_ready > 0:
        never = wait_ready(
            _health_endpoints(config),
            args.wait_ready,
            ctx.session,
            log=lambda line: print(line, file=table, flush=True),
        )
        for name, error in never.items():
            print(
                f"never came up within {args.wait_ready:.0f}s: {name} (last: {error})",
                file=table,
                flush=True,
            )
    checks = [c for c in CHECKS if not args.only or any(c.name.startswith(p) for p in args.only)]
    results = run_checks(checks, ctx, on_result=lambda r: table_line(r, table))
    wall_s = time.perf_counter() - start
    health = [r for r in results if r.name.endswith(".health") and r.status != "skip"]
    if health and not any(r.status == PASS for r in health):
        exit_code = EXIT_USAGE  # nothing answered: the checks could not run
    elif any(r.status == FAIL for r in results) or (
        any(r.status == WARN for r in results) and not args.allow_warnings
    ):
        exit_code = EXIT_FAILED
    else:
        exit_code = EXIT_OK
    print(summary(results, wall_s), file=table, flush=True)
    if args.format == "json":
        print(to_json(results, wall_s, exit_code, config.source))
    if args.junit:
        write_junit(args.junit, results, wall_s)
    return exit_code
