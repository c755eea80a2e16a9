"""What Prometheus's scraping costs vLLM (make bench): one vLLM (CPU, the tiny random test
model) loaded by `r1deploy bench`'s runner in alternating runs, with a scraper reading its
/metrics at the stack's default interval (r1_stack_monitoring_scrape_interval_s, read from
roles/r1_stack/defaults/main.yml) and without one. Prints each run's output throughput, the
difference in %, the spread between runs of the same kind (the noise the difference sits
in), and the cost of one scrape: its time on an idle server over the interval bounds the
share of the server a scraper can take. Goal: under 1 %. 2 minutes of runs, plus the server's
start. Needs the cached vLLM env (tests/e2e/envs.sh vllm).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from r1deploy.bench import runner
from r1deploy.bench.target import Target
from tests.bench.vllm_tiny import REPO, CoreSplit, VllmServer, tiny_model, vllm_env_missing

GOAL_PERCENT = 1.0
PAIRS = 3  # runs of each kind, alternating: a drift of the machine hits both alike
RUN_S = 20.0  # each run; at 15 s a scraped run sees two scrapes, as Prometheus would do
CONCURRENCY = 4
IDLE_SCRAPES = 40  # to time one scrape


def scrape_interval_s() -> float:
    """The role's default: the one place it is kept."""
    defaults = yaml.safe_load((REPO / "roles/r1_stack/defaults/main.yml").read_text())
    return float(defaults["r1_stack_monitoring_scrape_interval_s"])


class Scraper(threading.Thread):
    """GETs /metrics every ``interval_s`` from the start, as Prometheus does, until stopped."""

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval_s = url + "/metrics", interval_s
        self.done = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        while not self.done.is_set():
            with urllib.request.urlopen(self.url, timeout=10) as response:
                response.read()
            self.scrapes += 1
            self.done.wait(self.interval_s)

    def stop(self) -> None:
        self.done.set()
        self.join()


def one_run(url: str, seed: int) -> float:
    """Output tokens/s of one time-bounded run at CONCURRENCY."""
    sweep = runner.SweepSettings(
        output_len=64,
        input_len=128,
        concurrency=[CONCURRENCY],
        num_prompts=100_000,  # the time bound ends the run
        max_seconds=RUN_S,
        warmup=0,
        seed=seed,
    )
    result = runner.run(Target(base_url=url, model=None), sweep)
    if result.get("error"):
        raise RuntimeError(f"bench run failed: {result['error']}")
    return float(result["levels"][0]["metrics"]["output_throughput"])


def one_scrape_s(url: str) -> tuple[float, int]:
    """Median seconds of a /metrics GET on the idle server, and the exposition's size."""
    times, size = [], 0
    for _ in range(IDLE_SCRAPES):
        start = time.perf_counter()
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            size = len(response.read())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def spread_percent(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.mean(values) * 100


def main() -> None:
    if reason := vllm_env_missing():
        print(f"scrape overhead: skipped: {reason}")
        return
    interval = scrape_interval_s()
    with tempfile.TemporaryDirectory(prefix="r1deploy-bench-scrape-") as tmp:
        try:
            model = tiny_model(Path(tmp))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"scrape overhead: skipped: no tiny model ({exc})")
            return
        print(
            f"scrape overhead (tiny random model, vLLM CPU, concurrency {CONCURRENCY}, "
            f"{PAIRS} x 2 runs of {RUN_S:.0f} s, scrape interval {interval:g} s; "
            "starting the server):",
            flush=True,
        )
        cores = CoreSplit()  # server and load on cores of their own (see CoreSplit)
        with VllmServer(model, Path(tmp) / "vllm.log", cores=cores) as url:
            os.sched_setaffinity(0, cores.clients)
            one_run(url, seed=99)  # warm-up: first requests compile and fill caches
            plain, scraped, scrapes = [], [], 0
            for pair in range(PAIRS):
                plain.append(one_run(url, seed=pair))
                scraper = Scraper(url, interval)
                scraper.start()
                try:
                    scraped.append(one_run(url, seed=pair))
                finally:
                    scraper.stop()
                scrapes += scraper.scrapes
                print(
                    f"  pair {pair + 1}: without {plain[-1]:8.1f} tok/s, "
                    f"with scraper {scraped[-1]:8.1f} tok/s",
                    flush=True,
                )
            scrape_s, size = one_scrape_s(url)
    without, with_ = statistics.mean(plain), statistics.mean(scraped)
    diff = (without - with_) / without * 100
    noise = max(spread_percent(plain), spread_percent(scraped))
    bound = scrape_s / interval * 100
    print(f"without scraping {without:8.1f} output tok/s (mean of {PAIRS})")
    print(f"with scraping    {with_:8.1f} output tok/s (mean of {PAIRS}; {scrapes} scrapes)")
    print(
        f"difference {diff:+.2f} % (positive: slower when scraped); spread between runs of "
        f"one kind up to {noise:.2f} %"
    )
    print(
        f"one scrape: {scrape_s * 1000:.1f} ms for {size / 1024:.0f} KiB of metrics on the idle "
        f"server; every {interval:g} s that is at most {bound:.3f} % of the server's time"
    )
    # A busy machine's runs spread by more than the goal: then only the bound can tell.
    if noise < GOAL_PERCENT:
        verdict = "ok" if diff < GOAL_PERCENT else "OVER GOAL"
        print(f"goal: under {GOAL_PERCENT:g} %: {verdict} (measured)")
    else:
        verdict = "ok" if bound < GOAL_PERCENT else "OVER GOAL"
        print(
            f"goal: under {GOAL_PERCENT:g} %: {verdict} by the bound; the runs spread by "
            f"{noise:.1f} %, too much here to measure a {GOAL_PERCENT:g} % difference"
        )


if __name__ == "__main__":
    main()
