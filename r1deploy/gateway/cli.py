"""`r1deploy serve-tools`: run the tool gateway for a tools file."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from r1deploy.cliconv import ExitCode
from r1deploy.inputfile import InputRefused, decode_utf8, read_bytes
from r1deploy.tools.validate import ToolsFileError, load_plugins

EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.CANNOT_RUN
KEY_ENV = "TOOLS_GATEWAY_KEY"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve-tools", help="serve tools.json as an OpenAPI tool server (the tool gateway)"
    )
    parser.add_argument("--tools", default="tools.json", metavar="FILE", help="the tools file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on")
    parser.add_argument(
        "--key-file",
        type=Path,
        help=f"file holding the callers' bearer key (default: the {KEY_ENV} variable)",
    )
    parser.add_argument("--server-url", help="advertise this URL in the spec's `servers`")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.set_defaults(handler=run_serve)


def read_key(key_file: Path | None) -> tuple[str, str]:
    """The callers' bearer key and where it came from; SystemExit with the fix when the
    key file cannot be used."""
    if key_file is None:
        return os.environ.get(KEY_ENV, "").strip(), f"the {KEY_ENV} variable"
    where = f"--key-file {key_file}"
    try:
        data, info = read_bytes(key_file)
        key = decode_utf8(data).strip()
    except OSError as exc:
        raise SystemExit(f"r1deploy serve-tools: cannot read {where}: {exc.strerror}") from None
    except InputRefused as exc:
        raise SystemExit(f"r1deploy serve-tools: {where}: {exc.message}; {exc.fix}") from None
    if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        raise SystemExit(
            f"r1deploy serve-tools: {where} is readable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): run chmod 600 {key_file}"
        )
    return key, where


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from r1deploy.gateway.app import MIN_KEY_CHARS, create_app
        from r1deploy.gateway.routes import GatewayConfigError
    except ImportError as exc:
        print(
            f"r1deploy serve-tools: {exc.name} is missing; install the gateway extra: "
            "pip install 'r1deploy[gateway]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        key, where = read_key(args.key_file)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if not key:
        print(
            f"r1deploy serve-tools: no bearer key: set {KEY_ENV} (the stack's .env has it) "
            "or pass --key-file FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if len(key) < MIN_KEY_CHARS:
        print(
            f"r1deploy serve-tools: the bearer key in {where} has {len(key)} characters; "
            f"use at least {MIN_KEY_CHARS} (the r1_stack role generates 40), e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        plugins = load_plugins(args.tools)
        app = create_app(plugins, key, server_url=args.server_url)
    except OSError as exc:
        print(f"r1deploy serve-tools: cannot read {args.tools}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except ToolsFileError as exc:
        print(f"r1deploy serve-tools: {args.tools} is not valid:\n{exc}", file=sys.stderr)
        return EXIT_FAILED
    except GatewayConfigError as exc:
        print(f"r1deploy serve-tools: cannot serve {args.tools}:\n{exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"r1deploy serve-tools: {len(plugins)} tools from {args.tools} on "
        f"http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK
