"""`python -m r1deploy.bench run|compare ...`: the `r1deploy bench` verbs on their own."""

import argparse
import sys

from r1deploy.bench.cli import register

parser = argparse.ArgumentParser(prog="r1deploy")
register(parser.add_subparsers())
args = parser.parse_args(["bench", *sys.argv[1:]])
sys.exit(args.handler(args))
