"""`r1deploy serve-tools`: run the tool gateway for a tools file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from r1deploy.tools.validate import ToolsFileError, load_plugins

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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


def read_key(key_file: Path | None) -> str:
    if key_file is not None:
        try:
            return key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SystemExit(
                f"r1deploy serve-tools: cannot read --key-file {key_file}: {exc}"
            ) from None
    return os.environ.get(KEY_ENV, "").strip()


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from r1deploy.gateway.app import create_app
        from r1deploy.gateway.routes import GatewayConfigError
    except ImportError as exc:
        print(
            f"r1deploy serve-tools: {exc.name} is missing; install the gateway extra: "
            "pip install 'r1deploy[gateway]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        key = read_key(args.key_file)
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
