"""Run `vllm bench serve` and `r1deploy bench` alternately, in one process, against the same
server with the same workload; print one JSON object of per-round results.

One process (the vLLM env's python, with this repository on PYTHONPATH; r1deploy.bench needs
only aiohttp, which that env has at the pinned version) so that rounds are seconds apart
with no interpreter start-up between them.

Same workload means the same prompts: each run gets a fresh set of random prompts of exactly
INPUT_LEN tokens (r1deploy's generator, fitted with the server's /tokenize); `vllm bench
serve` reads them from a JSONL file as its custom dataset (chat template left to the server),
r1deploy bench takes them as its dataset. Both measure the same NUM_PROMPTS prompts;
a fresh set per run keeps the server's prefix cache from serving any of them twice.

Usage: <vllm-env>/bin/python tests/e2e/bench_agreement_driver.py URL MODEL_DIR SERVED_NAME
       CONCURRENCY NUM_PROMPTS ROUNDS INPUT_LEN OUTPUT_LEN WORKDIR
"""

import argparse
import asyncio
import contextlib
import io
import json
import sys
from pathlib import Path

import aiohttp
import vllm.benchmarks.serve as serve

from r1deploy.bench import runner
from r1deploy.bench.target import Target
from r1deploy.bench.workload import build_prompts

KEYS = (
    "completed",
    "total_input_tokens",
    "total_output_tokens",
    "output_throughput",
    "median_ttft_ms",
    "median_tpot_ms",
    "median_itl_ms",
    "median_e2el_ms",
)


def fresh_prompts(url, served, count, input_len, seed) -> list[str]:
    """``count`` fresh random prompts of exactly ``input_len`` tokens (r1deploy's generator)."""

    async def build():
        async with aiohttp.ClientSession() as session:
            prompts, _ = await build_prompts(
                session, Target(base_url=url, model=served), count, input_len, None, seed
            )
        return [p.text for p in prompts]

    return asyncio.run(build())


def vllm_run(url, model_dir, served, concurrency, num_prompts, output_len, dataset: Path):
    parser = argparse.ArgumentParser()
    serve.add_cli_args(parser)
    args = parser.parse_args(
        [
            "--backend",
            "openai-chat",
            "--endpoint",
            "/v1/chat/completions",
            "--base-url",
            url,
            "--model",
            model_dir,
            "--served-model-name",
            served,
            "--dataset-name",
            "custom",
            "--dataset-path",
            str(dataset),
            "--skip-chat-template",
            "--disable-shuffle",
            "--custom-output-len",
            str(output_len),
            "--ignore-eos",
            "--num-prompts",
            str(num_prompts),
            "--max-concurrency",
            str(concurrency),
            "--num-warmups",
            str(concurrency),
            "--percentile-metrics",
            "ttft,tpot,itl,e2el",
            "--disable-tqdm",
        ]
    )
    with contextlib.redirect_stdout(io.StringIO()):
        result = serve.main(args)
    return {key: result[key] for key in KEYS}


def r1deploy_run(url, served, concurrency, num_prompts, output_len, texts: list[str]):
    # Warm-up prompts first, then the measured ones, as the runner takes them.
    sweep = runner.SweepSettings(
        output_len=output_len,
        input_len=None,
        dataset=texts,
        concurrency=[concurrency],
        num_prompts=num_prompts,
        warmup=concurrency,
    )
    result = runner.run(Target(base_url=url, model=served), sweep)
    if result["status"] != "complete":
        level = (result["levels"] or [{}])[0]
        raise SystemExit(
            f"r1deploy bench: {result['status']}: {result['error']}: "
            f"{level.get('partial_reasons')} {level.get('errors')}"
        )
    m = result["levels"][0]["metrics"]
    return {
        "completed": m["completed"],
        "total_input_tokens": m["total_input_tokens"],
        "total_output_tokens": m["total_output_tokens"],
        "output_throughput": m["output_throughput"],
        "median_ttft_ms": m["ttft"]["median_ms"],
        "median_tpot_ms": m["tpot"]["median_ms"],
        "median_itl_ms": m["itl"]["median_ms"],
        "median_e2el_ms": m["e2el"]["median_ms"],
        "client_cpu_fraction": result["levels"][0]["client_overhead"]["cpu_fraction_of_one_core"],
    }


def main():
    url, model_dir, served = sys.argv[1:4]
    concurrency, num_prompts, rounds, input_len, output_len = map(int, sys.argv[4:9])
    workdir = Path(sys.argv[9])
    rounds_out = []
    for i in range(rounds):
        order = ("vllm", "r1deploy") if i % 2 == 0 else ("r1deploy", "vllm")
        entry = {}
        for tool in order:
            seed = 1000 * concurrency + 2 * i + (tool == "r1deploy")
            # Warm-up prompts, then the measured ones. vLLM's file holds the measured ones
            # alone (its warm-up repeats the first); r1deploy takes the list as it is.
            texts = fresh_prompts(url, served, concurrency + num_prompts, input_len, seed)
            if tool == "vllm":
                measured = workdir / f"c{concurrency}-round{i}.jsonl"
                measured.write_text(
                    "".join(json.dumps({"prompt": t}) + "\n" for t in texts[concurrency:])
                )
                entry[tool] = vllm_run(
                    url, model_dir, served, concurrency, num_prompts, output_len, measured
                )
            else:
                entry[tool] = r1deploy_run(url, served, concurrency, num_prompts, output_len, texts)
        rounds_out.append(entry)
        print(json.dumps({"round": i, **entry}), file=sys.stderr, flush=True)
    print(json.dumps({"rounds": rounds_out}))


if __name__ == "__main__":
    main()
