"""`r1deploy model fetch`: the model's files from the hub into a directory, checked
(docs/model-fetch.md).

r1deploy model fetch --repo ID [--revision REV] --dest DIR [--token-file F] [--endpoint URL]
                     [--timeout S] [--check] [--format text|json]

Exit codes (r1deploy/cliconv.py): 0 every file there and matching the hub's checksum (or, with
--check, it would fit); 1 a downloaded file did not match (removed: run again); 2 it cannot
run: the hub unreachable, the token refused, the repo gated, the repo or revision not found,
too little disk.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from r1deploy.cliconv import ExitCode, SecretError, add_format, secret_from


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "model", help="fetch the model's files from the hub, checked (docs/model-fetch.md)"
    )
    verbs = parser.add_subparsers(dest="model_command", metavar="VERB", required=True)
    fetch = verbs.add_parser(
        "fetch",
        help="download a model repo into a directory: free disk checked first, every file "
        "checked against the hub's sha256 / git sha1 after",
    )
    fetch.add_argument(
        "--repo",
        required=True,
        metavar="ID",
        help="the model repo, e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B (r1_stack_model_id)",
    )
    fetch.add_argument(
        "--revision", default="main", metavar="REV", help="branch, tag or commit (default: main)"
    )
    fetch.add_argument(
        "--dest",
        required=True,
        metavar="DIR",
        help="the model directory: the files land here as in the repo (not the cache layout)",
    )
    fetch.add_argument(
        "--token-file",
        metavar="FILE",
        help="a file holding the Hugging Face token (default: $HF_TOKEN; none: anonymous)",
    )
    fetch.add_argument(
        "--endpoint",
        metavar="URL",
        help="the hub or a mirror (default: $HF_ENDPOINT, else https://huggingface.co)",
    )
    fetch.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="seconds each request may wait for the hub (default: $HF_HUB_DOWNLOAD_TIMEOUT, "
        "else 10)",
    )
    fetch.add_argument(
        "--check",
        action="store_true",
        help="only report what would be downloaded and the free disk; write nothing",
    )
    add_format(fetch)
    fetch.set_defaults(handler=run_fetch)


def _fail(error, fmt: str, result=None) -> int:
    print(f"r1deploy model fetch: {error}", file=sys.stderr)
    if fmt == "json":
        data = result.to_dict() if result is not None else {}
        print(json.dumps({**data, "ok": False, "error": error.to_dict()}, indent=2))
    return error.code


def run_fetch(args) -> int:
    from r1deploy.model.fetch import FetchError, Source, endpoint_from, timeout_from

    try:
        token_from = f"--token-file {args.token_file}" if args.token_file else "HF_TOKEN"
        token = secret_from(args.token_file, "HF_TOKEN", "Hugging Face token")
    except SecretError as exc:
        return _fail(
            FetchError(str(exc), "give a readable file holding the token (r1_stack_hf_token)"),
            args.format,
        )
    try:
        source = Source(
            repo=args.repo,
            revision=args.revision,
            endpoint=endpoint_from(args.endpoint),
            token=token,
            token_from=token_from if token else None,
            timeout=timeout_from(args.timeout),
        )
    except FetchError as exc:
        return _fail(exc, args.format)
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return _fail(
            FetchError(
                "huggingface_hub is not installed in this Python",
                "install r1deploy with its dependencies (pip install -c "
                "requirements/constraints.txt -e .), which pins huggingface-hub",
            ),
            args.format,
        )
    return _run(source, Path(args.dest), args)


def _run(source, dest: Path, args) -> int:
    from r1deploy.model.fetch import FetchError, Progress, bad_files_error, fetch, human

    progress = Progress(sys.stderr)
    try:
        result = fetch(source, dest, check_only=args.check, progress=progress)
    except FetchError as exc:
        return _fail(exc, args.format)
    if result.bad:
        return _fail(bad_files_error(result), args.format, result)
    plan = result.plan
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    elif args.check:
        print(
            f"{source.repo} at {source.revision} (commit {plan.commit[:12]}): would download "
            f"{human(plan.download_bytes)} of {human(plan.total_bytes)} into {dest}; "
            f"{human(plan.free_bytes)} free, {human(plan.required_bytes)} needed: it fits "
            "(nothing written)"
        )
    else:
        print(
            f"{source.repo} at {source.revision} (commit {plan.commit[:12]}) in {dest}: "
            f"{len(plan.files)} files, {human(plan.total_bytes)}, every one matches the hub's "
            f"checksum ({human(result.downloaded_bytes)} downloaded, {result.seconds:.1f} s)"
        )
    return ExitCode.OK
