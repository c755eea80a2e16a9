"""`r1deploy top --stack-dir DIR [--prometheus URL | --direct] [--interval S] [--once]
[--format text|json]`.

Exit codes (r1deploy/cliconv.py): 0 the figures were shown (a service that is down is
shown down), 2 could not run (no stack directory, settings.json missing or unreadable, no
service in it, a bad --interval, Prometheus unreachable or refusing).
"""

from __future__ import annotations

import sys
import time

from r1deploy.cliconv import (
    NO_STACK_DIR,
    ExitCode,
    SecretError,
    add_format,
    add_stack_dir,
    cannot_run,
    secret_from,
)

PROMETHEUS_PASSWORD_ENV = "R1DEPLOY_PROMETHEUS_PASSWORD"

# rich and prometheus-client are imported when the verb runs: `r1deploy` builds every verb's
# parser, and `r1deploy testmodel` runs where neither is installed.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "top",
        help="the model server's and tool gateway's live figures in the terminal",
        description="Read each service's /metrics and show, refreshed every --interval "
        "seconds: the model server's running and waiting requests, KV cache use, generated "
        "tokens/s, time to first token (p50, p95) and finished requests; the tool gateway's "
        "calls by tool and outcome and those in flight (docs/observability.md). With "
        "--prometheus URL, or settings.json monitoring.prometheus_url, the figures come from "
        "that Prometheus, one column per vLLM replica it scrapes.",
    )
    add_stack_dir(parser)
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="read the figures from this Prometheus (its /api/v1/query) instead of each "
        "service's /metrics; default: settings.json monitoring.prometheus_url when set. "
        "--stack-dir is then optional",
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="read each service's /metrics even when settings.json names a Prometheus",
    )
    parser.add_argument(
        "--prometheus-user",
        default="ops",
        metavar="USER",
        help="basic auth user for --prometheus when a password is given (default ops)",
    )
    parser.add_argument(
        "--prometheus-password-file",
        metavar="FILE",
        help=f"file holding the basic auth password for --prometheus (or the environment "
        f"variable {PROMETHEUS_PASSWORD_ENV})",
    )
    add_format(parser)
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes, and between --once's two scrapes (default 1; "
        "--once --interval 0: one scrape, rates n/a)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one frame and exit (two scrapes --interval apart, for the rates)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="per-request timeout (default 2)",
    )
    parser.set_defaults(handler=run)


def _cannot_run(message: str) -> int:
    return cannot_run("top", message)


def run(args) -> int:
    from r1deploy.stackdir import StackDir, StackDirError
    from r1deploy.top.source import DirectSource, PrometheusError, prometheus_url, targets

    if args.prometheus and args.direct:
        return _cannot_run("--prometheus and --direct: give one of them")
    if not args.stack_dir and not args.prometheus:
        return _cannot_run(NO_STACK_DIR + ", or --prometheus URL")
    if args.interval < 0 or (args.interval == 0 and not args.once):
        return _cannot_run(f"--interval {args.interval:g}: give a number of seconds above 0")
    stack = None
    if args.stack_dir:
        try:
            stack = StackDir.load(args.stack_dir)
        except StackDirError as exc:
            return _cannot_run(str(exc))
        except OSError as exc:
            return _cannot_run(
                f"cannot read {exc.filename}: {exc.strerror}; run as a user who may read the "
                "stack directory (on the host: root, e.g. sudo make top)"
            )
    url = args.prometheus or (None if args.direct or stack is None else prometheus_url(stack))
    if url:
        try:
            source = _prometheus_source(url, args)
        except SecretError as exc:
            return _cannot_run(str(exc))
    else:
        found = targets(stack)
        if not found:
            return _cannot_run(
                f"{stack.path / 'settings.json'} names no model server (vllm.url) and no "
                "enabled tool gateway (gateway.url): render the stack again with the current "
                "role (make render, or make deploy)"
            )
        source = DirectSource(found, stack.env, timeout_s=args.timeout)
    label = str(stack.path) if stack else ""
    try:
        if args.once:
            return _once(source, args, label)
        return _live(source, args, label)
    except PrometheusError as exc:
        return _cannot_run(str(exc))
    finally:
        source.close()


def _prometheus_source(url: str, args):
    from r1deploy.top.source import PrometheusSource

    password = secret_from(
        args.prometheus_password_file, PROMETHEUS_PASSWORD_ENV, "Prometheus password"
    )
    auth = (args.prometheus_user, password) if password else None
    return PrometheusSource(url, auth=auth, timeout_s=args.timeout)


def _console():
    from rich.console import Console

    # A pipe or a file gets no colour and a width that fits the tables.
    return Console(width=None if sys.stdout.isatty() else 140)


def _show(frame, args, stack_dir: str, console) -> None:
    from r1deploy.top.view import render, to_json

    if args.format == "json":
        print(to_json(frame, stack_dir), flush=True)
    else:
        console.print(render(frame, stack_dir, None if args.once else args.interval))


def _once(source, args, stack_dir: str) -> int:
    if args.interval > 0 and source.name == "direct":
        source.frame()  # the scrape the rates are computed against (Prometheus has its own)
        time.sleep(args.interval)
    _show(source.frame(), args, stack_dir, _console())
    return ExitCode.OK


def _live(source, args, stack_dir: str) -> int:
    from rich.live import Live

    from r1deploy.top.view import render

    console = _console()
    try:
        if args.format == "json":  # one JSON object a line, each refresh
            while True:
                _show(source.frame(), args, stack_dir, console)
                time.sleep(args.interval)
        with Live(console=console, auto_refresh=False) as live:
            while True:
                live.update(render(source.frame(), stack_dir, args.interval), refresh=True)
                time.sleep(args.interval)
    except KeyboardInterrupt:
        return ExitCode.OK
