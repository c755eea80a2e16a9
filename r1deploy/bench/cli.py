"""`r1deploy bench run|compare`."""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

from r1deploy.cliconv import ExitCode, SecretError, add_format, add_stack_dir, secret_from

EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.CANNOT_RUN


def _int_list(text: str) -> list[int | None]:
    values: list[int | None] = []
    for item in text.split(","):
        item = item.strip()
        if item in ("inf", "max"):
            values.append(None)
            continue
        if not item.isdigit() or int(item) < 1:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected positive integers separated by commas, e.g. 1,4,16,64"
            )
        values.append(int(item))
    return values


def _float_list(text: str) -> list[float]:
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected requests/s separated by commas, e.g. 2,4,8"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{item!r}: a request rate must be > 0")
        values.append(value)
    return values


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmark a serving endpoint (vllm bench serve metrics)",
        description="Streamed chat-completion load against an OpenAI-compatible endpoint, "
        "with the metric definitions of `vllm bench serve`.",
    )
    verbs = bench.add_subparsers(dest="bench_command", metavar="VERB")
    bench.set_defaults(handler=lambda args: (bench.print_help(sys.stderr), EXIT_USAGE)[1])

    run = verbs.add_parser("run", help="run a benchmark sweep")
    where = run.add_argument_group("endpoint (a stack dir, or flags; flags win)")
    add_stack_dir(where)
    where.add_argument("--base-url", help="server root, e.g. http://127.0.0.1:8000")
    where.add_argument(
        "--model", help="served model name (default: the stack's, else the server's first)"
    )
    where.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="file holding the bearer key (default: the stack's: its API_KEY_OPS through "
        "its front door, VLLM_API_KEY without one or with --inside; else $OPENAI_API_KEY)",
    )
    # A key on the command line shows in the process list: refused, with the way out.
    where.add_argument("--api-key", dest="api_key_flag", help=argparse.SUPPRESS)
    where.add_argument(
        "--via",
        choices=("vllm", "webui"),
        default="vllm",
        help="load vLLM directly (default) or through Open WebUI's "
        "/api/chat/completions (with --stack-dir: signs in as the admin)",
    )
    where.add_argument(
        "--inside",
        action="store_true",
        help="with --stack-dir: load the service behind the stack's front door directly "
        "(diagnosis); default with a front door: through it, as applications reach the stack",
    )
    work = run.add_argument_group("workload")
    work.add_argument(
        "--input-len",
        type=_positive_int,
        default=None,
        help="prompt tokens (random text; default 128 without --dataset)",
    )
    work.add_argument(
        "--dataset", help='prompts file: .jsonl with {"prompt": ...} or one prompt a line'
    )
    work.add_argument(
        "--output-len",
        type=_positive_int,
        default=128,
        help="output tokens per request (default 128)",
    )
    work.add_argument(
        "--no-ignore-eos",
        dest="ignore_eos",
        action="store_false",
        help="let the model stop early (output length then varies)",
    )
    work.add_argument("--temperature", type=float, default=None)
    work.add_argument(
        "--seed",
        type=int,
        default=None,
        help="prompt seed (default: a new one each run, recorded in the result; "
        "a repeated seed repeats prompts, which the server's prefix cache "
        "then serves faster)",
    )
    work.add_argument(
        "--min-tokens",
        action="store_true",
        help="also send min_tokens = --output-len (for a proxy that drops "
        "ignore_eos; `vllm bench serve` sends ignore_eos alone)",
    )
    load = run.add_argument_group("load")
    load.add_argument(
        "--concurrency",
        type=_int_list,
        default=[1],
        help="concurrency levels to sweep, e.g. 1,4,16,64 (default 1; inf: no cap)",
    )
    load.add_argument(
        "--request-rate",
        type=_float_list,
        default=None,
        help="Poisson request rates (req/s) to sweep instead, e.g. 2,4,8",
    )
    load.add_argument(
        "--num-prompts",
        type=_positive_int,
        default=None,
        help="requests per level (default 10 per unit of concurrency, >= 20)",
    )
    load.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop sending new requests in a level after this many seconds",
    )
    load.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up requests per level (default: the concurrency, at most 8)",
    )
    load.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="seconds without a byte before a request fails (default 300)",
    )
    out = run.add_argument_group("results")
    out.add_argument(
        "--goodput",
        nargs="+",
        default=[],
        metavar="NAME:MS",
        help="SLOs for goodput, e.g. --goodput ttft:500 tpot:50 (ttft, tpot, e2el)",
    )
    out.add_argument(
        "--percentiles", default="50,90,99", help="percentiles to report (default 50,90,99)"
    )
    out.add_argument(
        "--output",
        "--json",
        dest="json_path",
        metavar="FILE",
        help="write the full result as JSON here ('-': stdout)",
    )
    out.add_argument("--plot", help="write a PNG of throughput against latency here")
    out.add_argument(
        "--gpu",
        help="GPU for the roofline line when nvidia-smi is not local "
        "(H100-SXM, H200, A100-80GB, RTX-4090, RTX-3060-12GB)",
    )
    out.add_argument("--quiet", action="store_true", help="no live progress")
    run.set_defaults(handler=handle_run)

    cmp_ = verbs.add_parser("compare", help="ratios of two results (B/A)")
    cmp_.add_argument("a", metavar="A.json")
    cmp_.add_argument("b", metavar="B.json")
    add_format(cmp_)
    cmp_.set_defaults(handler=handle_compare)


def _sweep_from_args(args: argparse.Namespace):
    from r1deploy.bench.metrics import parse_goodput
    from r1deploy.bench.runner import SweepSettings
    from r1deploy.bench.workload import read_dataset

    goodput = parse_goodput(args.goodput)
    try:
        percentiles = tuple(float(p) for p in args.percentiles.split(","))
    except ValueError:
        raise ValueError(
            f"--percentiles {args.percentiles!r}: expected numbers, e.g. 50,90,99"
        ) from None
    if any(not 0 < p <= 100 for p in percentiles):
        raise ValueError(f"--percentiles {args.percentiles!r}: each must be in (0, 100]")
    if args.request_rate and len(args.request_rate) > 1 and len(args.concurrency) > 1:
        raise ValueError(
            "sweep either --concurrency or --request-rate, not both "
            "(one of them may have a single value, e.g. a concurrency cap)"
        )
    if args.warmup is not None and args.warmup < 0:
        raise ValueError("--warmup must be >= 0")
    dataset = read_dataset(Path(args.dataset)) if args.dataset else None
    input_len = args.input_len if (args.input_len or dataset) else 128
    concurrency = args.concurrency
    if args.request_rate and args.concurrency == [1]:
        concurrency = [None]  # rate sweep without an explicit cap
    return SweepSettings(
        output_len=args.output_len,
        input_len=input_len,
        dataset=dataset,
        dataset_path=args.dataset,
        concurrency=concurrency,
        request_rate=args.request_rate or [math.inf],
        num_prompts=args.num_prompts,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
        ignore_eos=args.ignore_eos,
        temperature=args.temperature,
        goodput_slos_ms=goodput,
        percentiles=percentiles,
        seed=args.seed if args.seed is not None else random.randrange(2**31),
        request_timeout_s=args.request_timeout,
        min_tokens=args.min_tokens,
    )


def handle_run(args: argparse.Namespace) -> int:
    from r1deploy.bench import report, runner
    from r1deploy.bench.target import TargetError, resolve_target
    from r1deploy.bench.workload import WorkloadError

    try:
        if args.api_key_flag:
            raise ValueError(
                "--api-key is refused: a key on the command line shows in the "
                "process list. Fix: --api-key-file FILE, or OPENAI_API_KEY in the "
                "environment, or --stack-dir (its .env)"
            )
        api_key = secret_from(args.api_key_file, None, "API key")
        target = resolve_target(
            args.stack_dir, args.base_url, args.model, api_key, args.via, args.inside
        )
        sweep = _sweep_from_args(args)
    except (TargetError, WorkloadError, SecretError, ValueError) as exc:
        print(f"r1deploy bench: {exc}", file=sys.stderr)
        return EXIT_USAGE

    live = not args.quiet
    tty = sys.stderr.isatty()
    state = {"label": "", "total": 0, "header": False}

    def on_level_start(label: str, total: int) -> None:
        state.update(label=label, total=total)
        if live:
            print(f"level {label}: warm-up, then {total} requests", file=sys.stderr)

    def on_progress(progress) -> None:
        if live and tty:
            line = report.progress_line(state["label"], state["total"], progress)
            print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)

    def on_level_done(level: dict) -> None:
        if not live:
            return
        if tty:
            print(file=sys.stderr)
        if not state["header"]:
            print(report.table_header(), file=sys.stderr)
            state["header"] = True
        print(report.table_row(level), file=sys.stderr, flush=True)

    result = runner.run(
        target,
        sweep,
        args.gpu,
        on_level_start=on_level_start,
        on_progress=on_progress,
        on_level_done=on_level_done,
    )
    print(report.final_report(result))
    if args.json_path:
        text = json.dumps(result, indent=2)
        if args.json_path == "-":
            print(text)
        else:
            Path(args.json_path).write_text(text + "\n", encoding="utf-8")
            print(f"result: {args.json_path}")
    if args.plot and result["levels"]:
        from r1deploy.bench.plot import PlotUnavailable, plot_sweep

        try:
            plot_sweep(result, args.plot)
            print(f"plot: {args.plot}")
        except PlotUnavailable as exc:
            print(f"r1deploy bench: {exc}", file=sys.stderr)
    if result["status"].startswith("failed"):
        return EXIT_USAGE
    return EXIT_FAILED if result["partial"] else EXIT_OK


def handle_compare(args: argparse.Namespace) -> int:
    from r1deploy.bench import report

    try:
        a, b = report.load_result(args.a), report.load_result(args.b)
    except report.ResultFileError as exc:
        print(f"r1deploy bench compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows, warnings = report.compare(a, b)
    if args.format == "json":
        print(
            json.dumps({"a": args.a, "b": args.b, "levels": rows, "warnings": warnings}, indent=2)
        )
    else:
        print(f"A: {args.a}\nB: {args.b}")
        print(report.compare_table(rows))
        for warning in warnings:
            print(f"warning: {warning}")
    if not rows:
        print(
            "r1deploy bench compare: no level in common (same --concurrency/--request-rate needed)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
