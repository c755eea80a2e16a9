"""`python -m r1deploy.model fetch ...`: the same command as `r1deploy model fetch`, runnable
where only this package's model and cliconv modules and huggingface_hub are installed. The
deploy's fetch step (roles/r1_model_fetch) runs it on each model server before the stack's
own environments exist, so that a fetch that cannot succeed stops the run before anything
that runs is touched."""

from __future__ import annotations

import argparse
import sys

from r1deploy.model.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1deploy.model")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["model", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
