"""The sweep: probe the server, build the prompts, run each level, assemble the result."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import math
import os
import platform
import sys
from collections.abc import Callable
from importlib import metadata

import aiohttp

from r1deploy import __version__
from r1deploy.bench import client, roofline
from r1deploy.bench.target import Target, TargetError, probe_server
from r1deploy.bench.workload import WorkloadError, build_prompts

SCHEMA_VERSION = 1


@dataclasses.dataclass
class SweepSettings:
    output_len: int
    input_len: int | None
    dataset: list[str] | None = None
    dataset_path: str | None = None
    concurrency: list[int | None] = dataclasses.field(default_factory=lambda: [1])
    request_rate: list[float] = dataclasses.field(default_factory=lambda: [math.inf])
    num_prompts: int | None = None  # None: 10 per unit of concurrency, at least 20
    warmup: int | None = None  # None: one per concurrency slot, at most 8
    max_seconds: float | None = None
    ignore_eos: bool = True
    temperature: float | None = None
    goodput_slos_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    percentiles: tuple[float, ...] = (50.0, 90.0, 99.0)
    seed: int = 0
    request_timeout_s: float = 300.0
    min_tokens: bool = False

    def levels(self) -> list[tuple[int | None, float]]:
        return [(c, r) for r in self.request_rate for c in self.concurrency]

    def prompts_for(self, concurrency: int | None, rate: float) -> int:
        if self.num_prompts:
            return self.num_prompts
        return max(20, 10 * (concurrency or (10 if math.isinf(rate) else math.ceil(rate))))

    def warmup_for(self, concurrency: int | None) -> int:
        return self.warmup if self.warmup is not None else min(concurrency or 8, 8)


def machine_info() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def redacted_argv(argv: list[str]) -> list[str]:
    """The command line with the --api-key value hidden (results get shared)."""
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg == "--api-key":
            out.append(arg)
            hide_next = True
        elif arg.startswith("--api-key="):
            out.append("--api-key=***")
        else:
            out.append(arg)
    return out


def client_info() -> dict:
    return {
        "r1deploy": __version__,
        "aiohttp": metadata.version("aiohttp"),
        "argv": redacted_argv(sys.argv[1:]),
    }


def new_result(target: Target, sweep: SweepSettings) -> dict:
    settings = {
        "input_len": sweep.input_len,
        "output_len": sweep.output_len,
        "ignore_eos": sweep.ignore_eos,
        "dataset": sweep.dataset_path,
        "concurrency": sweep.concurrency,
        "request_rate": [None if math.isinf(r) else r for r in sweep.request_rate],
        "num_prompts": sweep.num_prompts,
        "warmup": sweep.warmup,
        "max_seconds": sweep.max_seconds,
        "temperature": sweep.temperature,
        "goodput_slos_ms": sweep.goodput_slos_ms,
        "percentiles": list(sweep.percentiles),
        "seed": sweep.seed,
        "request_timeout_s": sweep.request_timeout_s,
        "min_tokens": sweep.min_tokens,
    }
    return {
        "kind": "r1deploy-bench",
        "schema_version": SCHEMA_VERSION,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "status": "running",
        "partial": True,
        "error": None,
        "target": {
            "base_url": target.base_url,
            "chat_path": target.chat_path,
            "model": target.model,
            "source": target.source,
            "via": target.via,
            "through": target.through,
        },
        "server": None,
        "client": client_info(),
        "machine": machine_info(),
        "settings": settings,
        "levels": [],
        "roofline": None,
    }


async def run_sweep(
    target: Target,
    sweep: SweepSettings,
    result: dict,
    on_level_start: Callable[[str, int], object] | None = None,
    on_progress: Callable | None = None,
    on_level_done: Callable[[dict], object] | None = None,
) -> dict:
    """Fill ``result`` in place (so an interrupted run still has what finished) and return it."""
    levels = sweep.levels()
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ssl=target.ssl_context())
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        try:
            result["server"] = await probe_server(session, target)
            result["target"]["model"] = target.model
            counts = [(sweep.prompts_for(c, r), sweep.warmup_for(c)) for c, r in levels]
            prompts, method = await build_prompts(
                session,
                target,
                sum(n + w for n, w in counts),
                sweep.input_len,
                sweep.dataset,
                sweep.seed,
            )
        except (TargetError, WorkloadError) as exc:
            result["status"] = "failed: could not start"
            result["error"] = str(exc)
            return result
        result["settings"]["prompt_length_method"] = method
        result["settings"]["measured_prompt_tokens"] = sorted(
            {p.tokens for p in prompts if p.tokens is not None}
        )[:5]
        texts = [p.text for p in prompts]
        for (conc, rate), (n, warm) in zip(levels, counts, strict=True):
            warm_texts, texts = texts[:warm], texts[warm:]
            main_texts, texts = texts[:n], texts[n:]
            settings = client.LoadSettings(
                output_len=sweep.output_len,
                ignore_eos=sweep.ignore_eos,
                num_prompts=n,
                concurrency=conc,
                request_rate=rate,
                warmup=warm,
                max_seconds=sweep.max_seconds,
                temperature=sweep.temperature,
                request_timeout_s=sweep.request_timeout_s,
                seed=sweep.seed,
                percentiles=sweep.percentiles,
                goodput_slos_ms=sweep.goodput_slos_ms,
                min_tokens=sweep.min_tokens,
            )
            label = f"c={conc or 'inf'}" + ("" if math.isinf(rate) else f" rate={rate:g}/s")
            if on_level_start:
                on_level_start(label, n)
            level = await client.run_level(
                session, target, main_texts, warm_texts, settings, on_progress
            )
            result["levels"].append(level)
            if on_level_done:
                on_level_done(level)
            if level.get("bounded_by") == "aborted" or level["metrics"]["completed"] == 0:
                result["error"] = "; ".join(level["partial_reasons"])
                break
    return result


def finish(result: dict, sweep: SweepSettings, gpu: str | None) -> dict:
    """Status, partial flag and roofline, from what the levels say."""
    levels = result["levels"]
    planned = len(sweep.levels())
    reasons = []
    if result["status"].startswith("failed"):
        reasons.append(result["status"])
    if len(levels) < planned and not result["status"].startswith("failed"):
        reasons.append(f"{planned - len(levels)} of {planned} levels not run")
    partial_levels = [lv for lv in levels if lv["status"] != "complete"]
    if partial_levels:
        reasons.append(f"{len(partial_levels)} levels partial")
    if not levels or not any(lv["metrics"]["completed"] for lv in levels):
        result["status"] = reasons[0] if reasons else "failed: nothing measured"
    else:
        result["status"] = "partial: " + "; ".join(reasons) if reasons else "complete"
    result["partial"] = result["status"] != "complete"
    gpu_name, source = (gpu, "--gpu") if gpu else (roofline.detect_gpu(), "nvidia-smi")
    single = next(
        (
            lv
            for lv in levels
            if lv.get("concurrency") == 1
            and lv.get("request_rate") is None
            and lv["metrics"].get("tpot")
        ),
        None,
    )
    tpot = single["metrics"]["tpot"]["median_ms"] if single else None
    model_root = (result.get("server") or {}).get("model_root")
    result["roofline"] = roofline.roofline(gpu_name, tpot, model_root, source)
    return result


def run(target: Target, sweep: SweepSettings, gpu: str | None = None, **callbacks) -> dict:
    result = new_result(target, sweep)
    try:
        asyncio.run(run_sweep(target, sweep, result, **callbacks))
    except KeyboardInterrupt:
        result["error"] = "interrupted"
    return finish(result, sweep, gpu)
