"""monitoring/dashboards/r1deploy.json: it loads, every panel is well formed and reads the
datasource variable, the panels do not overlap, and every metric a query reads is one the
stack exports: vLLM's from recorded expositions (tests/unit/fixtures/top/vllm-2.txt and
fixtures/dashboard/vllm-more.txt), the gateway's from its own registry, node_exporter's and
DCGM's from the short list below. Also r1deploy.monitoring.dashboard's helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1deploy.gateway.metrics import GatewayMetrics
from r1deploy.monitoring.dashboard import (
    DASHBOARD,
    load,
    metric_names,
    panel_queries,
    panels,
)
from r1deploy.top.figures import parse

FIXTURES = Path(__file__).parent / "fixtures"
VLLM_EXPOSITIONS = [FIXTURES / "top" / "vllm-2.txt", FIXTURES / "dashboard" / "vllm-more.txt"]
# Exporters r1deploy does not build: the series the dashboard and the alert rules read.
NODE_EXPORTER = {"node_filesystem_avail_bytes", "node_filesystem_size_bytes"}
DCGM_EXPORTER = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def exported() -> set[str]:
    names: set[str] = set(NODE_EXPORTER | DCGM_EXPORTER)
    for path in VLLM_EXPOSITIONS:
        names |= set(parse(path.read_text(encoding="utf-8"), at=0.0).samples)
    gateway = GatewayMetrics(["get_weather"]).exposition()[0].decode()
    names |= set(parse(gateway, at=0.0).samples)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return load(DASHBOARD)


def test_the_dashboard_imports_into_any_grafana(dashboard):
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    assert "__inputs" not in dashboard  # nothing asked at import: the variable picks it
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["datasource"] == DATASOURCE
    assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"


def test_every_panel_has_a_title_an_id_a_place_and_queries(dashboard):
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    everything = rows + panels(dashboard)  # those in a collapsed row too
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids)), "panel ids are not unique"
    for panel in everything:
        assert panel["title"].strip(), panel
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_the_panels_do_not_overlap_and_fit_the_grid(dashboard):
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_every_metric_a_query_reads_is_one_the_stack_exports():
    known = exported()
    read = set()
    for title, expr in panel_queries(DASHBOARD):
        names = metric_names(expr)
        assert names, f"{title}: {expr} reads no metric"
        assert names <= known, f"{title} reads {sorted(names - known)}, not exported"
        read |= names
    # What issue 19 asks of the dashboard is there.
    for name in (
        "vllm:request_success_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:request_time_per_output_token_seconds_bucket",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_hits_total",
        "vllm:prefix_cache_queries_total",
        "http_requests_total",
        "r1deploy_gateway_tool_calls_total",
        "r1deploy_gateway_upstream_seconds_bucket",
        *DCGM_EXPORTER,
    ):
        assert name in read, name


def test_the_gpu_panels_sit_in_the_gpu_hosts_only_row(dashboard):
    row = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        elif any("DCGM_FI_" in t["expr"] for t in panel["targets"]):
            assert "GPU hosts only" in row, panel["title"]


def test_panel_queries_titles_and_resolved_variables():
    queries = panel_queries(DASHBOARD)
    assert queries[0][0] == "Requests finished /s"
    assert len(queries) == sum(len(p["targets"]) for p in panels(load(DASHBOARD)))
    resolved = panel_queries(DASHBOARD, resolve=True)
    assert [t for t, _ in resolved] == [t for t, _ in queries]
    for _, expr in resolved:
        assert "$" not in expr, expr  # runs against /api/v1/query as it is


def test_panels_inside_a_collapsed_row_are_counted(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(
        '{"panels": [{"type": "row", "title": "r", "panels": '
        '[{"title": "in", "targets": [{"expr": "up"}]}]}, '
        '{"title": "out", "targets": [{"expr": "sum(x)"}, {"expr": "y"}]}]}'
    )
    assert panel_queries(path) == [("in", "up"), ("out", "sum(x)"), ("out", "y")]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (instance, le) (rate(a_bucket{job="x", le!="1"}[5m]))', {"a_bucket"}),
        ("vllm:a / on (instance) group_left (tool) b_total", {"vllm:a", "b_total"}),
        ('a > bool 0.5 or absent(b{c="by(d)"}) unless c offset 1h', {"a", "b", "c"}),
        ("histogram_quantile(0.95, sum without (pod) (rate(x[$__rate_interval])))", {"x"}),
        ("max_over_time(DCGM_FI_DEV_XID_ERRORS[10m]) > 1e3", {"DCGM_FI_DEV_XID_ERRORS"}),
    ],
)
def test_metric_names_of_a_query(expr, names):
    assert metric_names(expr) == names
