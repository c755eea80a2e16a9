"""A Frame on the terminal (rich tables) or as JSON."""

from __future__ import annotations

import dataclasses
import json

from rich.console import Group
from rich.table import Table
from rich.text import Text

from r1deploy.top.figures import Frame, GatewayView, ModelServerView

NA = "n/a"
OK_OUTCOME = "ok"


def number(value: float | None, digits: int = 0) -> str:
    return NA if value is None else f"{value:,.{digits}f}"


def seconds(value: float | None) -> str:
    if value is None:
        return NA
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _window(window_s: float | None) -> str:
    return "rates n/a: one scrape so far" if window_s is None else f"rates over {window_s:.1f} s"


def _ttft(v: ModelServerView) -> str:
    if v.ttft_p50_s is None:
        return NA
    since_start = "*" if v.ttft_over == "since start" else ""
    return f"{seconds(v.ttft_p50_s)} / {seconds(v.ttft_p95_s)}{since_start}"


def _finished(v: ModelServerView) -> str:
    if v.requests_ok is None:
        return NA
    return " / ".join(number(n) for n in (v.requests_ok, v.requests_aborted, v.requests_error))


# The model server table's rows: label, and the cell of a server that is up.
FIGURES = [
    ("requests running / waiting", lambda v: f"{number(v.running)} / {number(v.waiting)}"),
    ("KV cache", lambda v: NA if v.kv_cache_pct is None else f"{v.kv_cache_pct:.1f} %"),
    ("generated tokens/s", lambda v: number(v.generation_tokens_per_s, 1)),
    ("TTFT p50 / p95", _ttft),
    ("finished ok / aborted / error", _finished),
    ("HTTP 5xx answers", lambda v: number(v.http_5xx)),
]


def model_server_table(views: list[ModelServerView]) -> Table:
    """One column per model server, one row per figure: fits a narrow terminal."""
    windows = {v.window_s for v in views if v.up}
    title = "Model server" + (f" ({_window(windows.pop())})" if len(windows) == 1 else "")
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for v in views:
        table.add_column(f"{v.name} ({v.engine})" if v.engine else v.name, justify="right")
    table.add_row(
        "state", *[Text("up", "green") if v.up else Text("down", "bold red") for v in views]
    )
    for label, cell in FIGURES:
        table.add_row(label, *[cell(v) if v.up else "" for v in views])
    return table


def gateway_table(view: GatewayView) -> Table:
    title = f"Tool gateway {view.name}" + (f" ({_window(view.window_s)})" if view.up else "")
    table = Table(title=title, title_justify="left")
    table.add_column("tool", min_width=max((len(r.tool) for r in view.tools), default=4))
    for heading in ("in flight", "calls/s", "calls", "ok"):
        table.add_column(heading, justify="right")
    table.add_column("not ok, by outcome")
    for row in view.tools:
        failed = sorted(
            ((o, n) for o, n in row.calls.items() if o != OK_OUTCOME and n), key=lambda p: -p[1]
        )
        table.add_row(
            row.tool,
            number(row.in_flight),
            number(row.calls_per_s, 2),
            number(sum(row.calls.values())),
            number(row.calls.get(OK_OUTCOME, 0.0)),
            ", ".join(f"{o} {n:,.0f}" for o, n in failed) or "-",
        )
    return table


def notes(frame: Frame) -> list[str]:
    lines = []
    for view in [*frame.model_servers, *frame.gateways]:
        if not view.up:
            lines.append(f"{view.name} is down: {view.error}")
    if any(v.up and v.ttft_over == "since start" for v in frame.model_servers):
        lines.append(
            "* TTFT over every request since the server started: no first token in the "
            "window Prometheus' rates are over"
            if frame.source == "prometheus"
            else "* TTFT over every request since the server started: one scrape so far, or no "
            "first token between the last two"
        )
    return lines


def render(frame: Frame, stack_dir: str, interval_s: float | None) -> Group:
    every = f"every {interval_s:g} s, " if interval_s else ""
    where = f"Prometheus {frame.source_url}" if frame.source_url else "each service's /metrics"
    place = f"{stack_dir}  " if stack_dir else ""
    header = Text(f"r1deploy top  {place}{frame.taken_at}  ({every}from {where})", style="bold")
    parts: list = [header]
    if frame.model_servers:
        parts.append(model_server_table(frame.model_servers))
    for gateway in frame.gateways:
        if gateway.up and gateway.tools:
            parts.append(gateway_table(gateway))
        elif gateway.up:
            parts.append(Text(f"Tool gateway {gateway.name}: up, no tool series in its /metrics"))
        else:
            parts.append(Text(f"Tool gateway {gateway.name}: ") + Text("down", style="bold red"))
    parts.extend(Text(line) for line in notes(frame))
    return Group(*parts)


def to_json(frame: Frame, stack_dir: str) -> str:
    return json.dumps({"stack_dir": stack_dir or None, **dataclasses.asdict(frame)})
