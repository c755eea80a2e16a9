"""The Grafana dashboard in monitoring/dashboards/: its panels' PromQL queries and the
metric names they read, so that tests can check them (tests/unit/test_dashboard.py against
the names the stack exports; an end-to-end test against a live Prometheus).

Standard library only: the dashboard is JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# monitoring/dashboards/r1deploy.json of a checkout (the package does not install it).
DASHBOARD = Path(__file__).resolve().parents[2] / "monitoring" / "dashboards" / "r1deploy.json"

# Grafana's own variables, which Prometheus does not know: what a query run outside Grafana
# puts in their place (panel_queries(..., resolve=True)).
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    '"$instance"': '".*"',
}

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()")


def load(path: str | Path = DASHBOARD) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included, rows themselves excluded."""
    found = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def panel_queries(path: str | Path = DASHBOARD, *, resolve: bool = False) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every query of every panel, in the dashboard's
    order. ``resolve``: Grafana's variables replaced (GRAFANA_VARIABLES) so that the
    expression runs against Prometheus' /api/v1/query as it is."""
    queries = []
    for panel in panels(load(path)):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if resolve:
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
            queries.append((panel.get("title", ""), expr))
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: the identifiers that are neither a
    function, a keyword, a label (in {...}, by (...), on (...)) nor a string or a range."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}
