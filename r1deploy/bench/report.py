"""Human output: the live progress line, the level table, the roofline line, and compare."""

from __future__ import annotations

import json
import time
from pathlib import Path


class ResultFileError(Exception):
    """A result file for compare cannot be used."""


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _stat(metrics: dict, name: str, key: str) -> float | None:
    summary = metrics.get(name)
    return summary.get(key) if summary else None


def level_label(level: dict) -> str:
    conc = level.get("concurrency")
    rate = level.get("request_rate")
    parts = [f"c={conc if conc else 'inf'}"]
    if rate is not None:
        parts.append(f"rate={rate:g}/s")
    return " ".join(parts)


COLUMNS = [
    ("level", 16),
    ("ok/sent", 9),
    ("req/s", 7),
    ("out tok/s", 10),
    ("TTFT p50", 9),
    ("TTFT p99", 9),
    ("TPOT p50", 9),
    ("TPOT p99", 9),
    ("ITL p50", 8),
    ("E2EL p50", 9),
    ("goodput", 8),
    ("status", 8),
]


def table_header() -> str:
    head = " ".join(f"{name:>{width}}" for name, width in COLUMNS)
    return head + "\n" + " ".join("-" * width for _, width in COLUMNS)


def table_row(level: dict) -> str:
    m = level["metrics"]
    cells = [
        level_label(level),
        f"{m['completed']}/{level.get('sent', 0)}",
        _fmt(m["request_throughput"], 2),
        _fmt(m["output_throughput"]),
        _fmt(_stat(m, "ttft", "median_ms")),
        _fmt(_stat(m, "ttft", "p99_ms")),
        _fmt(_stat(m, "tpot", "median_ms"), 2),
        _fmt(_stat(m, "tpot", "p99_ms"), 2),
        _fmt(_stat(m, "itl", "median_ms"), 2),
        _fmt(_stat(m, "e2el", "median_ms")),
        _fmt(m["request_goodput"], 2),
        level["status"].upper() if level["status"] != "complete" else "ok",
    ]
    return " ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def progress_line(label: str, total: int, progress) -> str:
    elapsed = max(time.perf_counter() - progress.started, 1e-9)
    return (
        f"  {label}: {progress.done}/{total} done, {progress.failed} failed, "
        f"{progress.done / elapsed:.1f} req/s, "
        f"{progress.output_tokens / elapsed:.0f} out tok/s"
    )


def roofline_line(roof: dict | None) -> str | None:
    if not roof:
        return None
    if not roof["known"]:
        return f"roofline: GPU {roof['gpu']!r} {roof['note']}"
    line = (
        f"roofline ({roof['gpu']}, {roof['bandwidth_tb_per_s']:.2f} TB/s, "
        f"{roof['weight_gb_per_token']:.2f} GB/token): single-stream ceiling "
        f"{roof['ceiling_tokens_per_s']:.0f} tok/s"
    )
    if roof["fraction"] is not None:
        line += (
            f"; measured {roof['measured_tokens_per_s']:.0f} tok/s = "
            f"{roof['fraction'] * 100:.0f}% of it"
        )
    if roof.get("note"):
        line += f" ({roof['note']})"
    return line


def final_report(result: dict) -> str:
    lines = []
    server = result.get("server") or {}
    workload = result["settings"]
    # The server as it names itself (owned_by: vllm, llamacpp), or the route (webui).
    via = server.get("via", "vllm")
    name = (server.get("owned_by") or via) if via == "vllm" else via
    through = result["target"].get("through")
    door = f"through the {through} " if through else ""
    lines.append(
        f"r1deploy bench: {server.get('model', '?')} at {result['target']['base_url']} {door}"
        f"({name} {server.get('version') or '?'}, "
        f"max_model_len {server.get('max_model_len', '?')}); "
        f"input {workload['input_len'] or 'dataset'} tok, output {workload['output_len']} tok"
        f"{' (ignore_eos)' if workload['ignore_eos'] else ''}"
    )
    if result["levels"]:
        lines.append(table_header())
        lines.extend(table_row(level) for level in result["levels"])
        lines.append("times in ms; goodput in req/s (requests within the --goodput SLOs)")
    for level in result["levels"]:
        overhead = level.get("client_overhead") or {}
        lag = overhead.get("loop_lag") or {}
        if overhead:
            lines.append(
                f"client overhead {level_label(level)}: "
                f"{_fmt((overhead.get('cpu_fraction_of_one_core') or 0) * 100, 0)}% of one core "
                f"({_fmt(overhead.get('cpu_ms_per_request'), 2)} ms CPU a request), "
                f"event-loop lag p99 {_fmt(lag.get('p99_ms'), 2)} ms, "
                f"{_fmt(overhead.get('parse_us_per_read'), 0)} us parsing per network read"
            )
        for reason in level.get("partial_reasons", []):
            lines.append(f"PARTIAL {level_label(level)}: {reason}")
        for err in level.get("errors", [])[:3]:
            lines.append(f"  {err['count']} x {err['error']}")
    if line := roofline_line(result.get("roofline")):
        lines.append(line)
    if result.get("error"):
        lines.append(f"error: {result['error']}")
    if result["partial"]:
        lines.append(f"RESULT IS PARTIAL: {result['status']}")
    return "\n".join(lines)


# --- compare ---------------------------------------------------------------------------------

# (label, metric path, higher is better)
COMPARED = [
    ("req/s", ("request_throughput",), True),
    ("out tok/s", ("output_throughput",), True),
    ("TTFT p50", ("ttft", "median_ms"), False),
    ("TTFT p99", ("ttft", "p99_ms"), False),
    ("TPOT p50", ("tpot", "median_ms"), False),
    ("TPOT p99", ("tpot", "p99_ms"), False),
    ("ITL p50", ("itl", "median_ms"), False),
    ("E2EL p50", ("e2el", "median_ms"), False),
]


def load_result(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read ({exc.strerror}).") from None
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{path}: line {exc.lineno}: not JSON ({exc.msg}).") from None
    if (
        not isinstance(data, dict)
        or data.get("kind") != "r1deploy-bench"
        or not isinstance(data.get("levels"), list)
    ):
        raise ResultFileError(
            f'{path}: not an r1deploy bench result (/kind must be "r1deploy-bench"). '
            "Fix: pass files written by `r1deploy bench run --json FILE`."
        )
    return data


def _metric(level: dict, path: tuple[str, ...]) -> float | None:
    value = level["metrics"]
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def compare(a: dict, b: dict) -> tuple[list[dict], list[str]]:
    """Ratios B/A for each level present in both, and warnings about unlike workloads."""
    warnings = []
    for key in ("input_len", "output_len", "ignore_eos", "dataset"):
        if a["settings"].get(key) != b["settings"].get(key):
            warnings.append(
                f"settings differ: {key} {a['settings'].get(key)!r} vs {b['settings'].get(key)!r}"
            )
    for name, result in (("A", a), ("B", b)):
        if result.get("partial"):
            warnings.append(f"{name} is a partial result")
    b_levels = {(lv.get("concurrency"), lv.get("request_rate")): lv for lv in b["levels"]}
    rows = []
    for level_a in a["levels"]:
        key = (level_a.get("concurrency"), level_a.get("request_rate"))
        level_b = b_levels.get(key)
        if level_b is None:
            warnings.append(f"{level_label(level_a)} only in A")
            continue
        row = {"level": level_label(level_a), "ratios": {}}
        for label, path, higher_better in COMPARED:
            va, vb = _metric(level_a, path), _metric(level_b, path)
            ratio = vb / va if va and vb is not None else None
            row["ratios"][label] = {
                "a": va,
                "b": vb,
                "ratio": ratio,
                "higher_is_better": higher_better,
            }
        rows.append(row)
    a_keys = {(lv.get("concurrency"), lv.get("request_rate")) for lv in a["levels"]}
    warnings.extend(
        f"{level_label(lv)} only in B"
        for lv in b["levels"]
        if (lv.get("concurrency"), lv.get("request_rate")) not in a_keys
    )
    return rows, warnings


def compare_table(rows: list[dict]) -> str:
    labels = [label for label, _, _ in COMPARED]
    lines = [
        "B/A ratios (throughput: >1 is faster; latency: <1 is faster)",
        f"{'level':>16} " + " ".join(f"{label:>10}" for label in labels),
    ]
    for row in rows:
        cells = []
        for label in labels:
            r = row["ratios"][label]
            if r["ratio"] is None:
                cells.append("-")
                continue
            better = (r["ratio"] > 1) == r["higher_is_better"] and abs(r["ratio"] - 1) > 1e-9
            cells.append(f"{r['ratio']:.3f}{'+' if better else ' '}")
        lines.append(f"{row['level']:>16} " + " ".join(f"{c:>10}" for c in cells))
    lines.append("+ marks B better than A")
    return "\n".join(lines)
