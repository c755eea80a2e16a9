"""`r1deploy agent "question"`: one question through the agent loop, answer on stdout.

The reasoning and the tool calls go to stderr, dimmed, so the answer stands apart (and
`r1deploy agent ... > answer.txt` keeps only the answer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from r1deploy.agent.loop import DEFAULT_MAX_ROUNDS, AgentError, Endpoint, run_agent
from r1deploy.cliconv import ExitCode, add_format, add_stack_dir
from r1deploy.stackdir import StackDir, StackDirError
from r1deploy.tools.export import to_openai
from r1deploy.tools.validate import ToolsFileError, load_plugins

EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.CANNOT_RUN


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "agent", help="ask a question through the agent loop (model + tools via the gateway)"
    )
    parser.add_argument("question")
    add_stack_dir(parser, help="rendered stack directory: URLs, model and keys")
    parser.add_argument("--vllm-url", help="OpenAI-compatible base URL, e.g. http://h:8000/v1")
    parser.add_argument("--model", help="served model name (default: the stack's, or the first)")
    parser.add_argument("--gateway-url", help="tool gateway URL, e.g. http://h:8090")
    parser.add_argument(
        "--tools", metavar="FILE", help="tools.json to offer (default: the stack's tools)"
    )
    parser.add_argument(
        "--tool-choice",
        default="auto",
        metavar="NAME|auto|required|none",
        help="tool_choice of the first round (later rounds: auto)",
    )
    parser.add_argument("--max-rounds", type=int, default=DEFAULT_MAX_ROUNDS)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    add_format(parser)
    parser.epilog = (
        "Keys come from the stack's .env, or from VLLM_API_KEY and TOOLS_GATEWAY_KEY in the "
        "environment (never from flags: they would show in the process list)."
    )
    parser.set_defaults(handler=run)


class _Printer:
    def __init__(self, stream):
        self.stream = stream
        colour = stream.isatty() and "NO_COLOR" not in os.environ
        self.dim, self.reset = ("\x1b[2m", "\x1b[0m") if colour else ("", "")

    def __call__(self, kind: str, data) -> None:
        if kind == "round":
            number, current = data
            if current.reasoning:
                text = current.reasoning.strip().replace("\n", "\n  ")
                print(
                    f"{self.dim}[thinking, round {number}]\n  {text}{self.reset}", file=self.stream
                )
        elif kind == "tool":
            result = data.result if len(data.result) <= 300 else data.result[:300] + "..."
            print(
                f"{self.dim}[tool] {data.name}({data.arguments}) -> HTTP {data.status}: "
                f"{result}{self.reset}",
                file=self.stream,
            )


def _settings(args) -> dict:
    """URLs, model, keys and tools from flags, the environment and the stack directory."""
    stack = StackDir.load(args.stack_dir) if args.stack_dir else None
    env = os.environ
    found = {
        "vllm_url": args.vllm_url,
        "model": args.model,
        "gateway_url": args.gateway_url,
        "vllm_key": env.get("VLLM_API_KEY", ""),
        "gateway_key": env.get("TOOLS_GATEWAY_KEY", ""),
        "tools_file": args.tools,
    }
    if stack:
        found["vllm_url"] = found["vllm_url"] or stack.setting("vllm", "url").rstrip("/") + "/v1"
        found["model"] = found["model"] or stack.setting("model", "served_name")
        found["gateway_url"] = found["gateway_url"] or stack.setting("gateway", "url")
        found["vllm_key"] = stack.env.get("VLLM_API_KEY") or found["vllm_key"]
        found["gateway_key"] = stack.env.get("TOOLS_GATEWAY_KEY") or found["gateway_key"]
        found["tools_file"] = found["tools_file"] or str(stack.file("tools_file", "tools.json"))
    missing = [
        flag
        for flag, key in (("--vllm-url", "vllm_url"), ("--gateway-url", "gateway_url"))
        if not found[key]
    ]
    if missing:
        raise StackDirError(f"give --stack-dir DIR or {' and '.join(missing)}")
    found["tools_file"] = found["tools_file"] or "tools.json"
    return found


def _first_model(url: str, key: str) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        models = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=30)
        models.raise_for_status()
        return models.json()["data"][0]["id"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise AgentError(f"cannot list the models at {url}/models: {exc}") from None


def run(args: argparse.Namespace) -> int:
    try:
        found = _settings(args)
        tools = to_openai(load_plugins(found["tools_file"]))
    except (StackDirError, ToolsFileError) as exc:
        print(f"r1deploy agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"r1deploy agent: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    printer = None if args.format == "json" else _Printer(sys.stderr)
    try:
        model = found["model"] or _first_model(found["vllm_url"], found["vllm_key"])
        result = run_agent(
            args.question,
            llm=Endpoint(found["vllm_url"], found["vllm_key"]),
            model=model,
            gateway=Endpoint(found["gateway_url"], found["gateway_key"]),
            tools=tools,
            tool_choice=args.tool_choice,
            max_rounds=args.max_rounds,
            timeout_s=args.timeout,
            on_event=printer,
        )
    except ValueError as exc:
        print(f"r1deploy agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AgentError as exc:
        print(f"r1deploy agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.answer.strip())
    return EXIT_OK if result.answer.strip() else EXIT_FAILED
