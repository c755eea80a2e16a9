"""`r1deploy top`: the frame computed from two recorded /metrics texts (vLLM, llama.cpp's
server, the tool gateway; tests/unit/fixtures/top/), rates and percentiles in numbers, n/a
where a metric is missing, a service that is down, and `--once` through the CLI against
stand-in servers (tests/support/recorded_http.py)."""

from __future__ import annotations

import json
import math
from base64 import b64encode
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from r1deploy.cli import main
from r1deploy.cliconv import ExitCode
from r1deploy.gateway.metrics import GatewayMetrics
from r1deploy.stackdir import StackDir
from r1deploy.top.figures import (
    GATEWAY_CALLS,
    GATEWAY_IN_FLIGHT,
    Frame,
    gateway_view,
    model_server_view,
    parse,
    quantile,
)
from r1deploy.top.source import (
    GATEWAY,
    MODEL_SERVER,
    WINDOW_S,
    DirectSource,
    PrometheusError,
    PrometheusSource,
    Target,
    frame_query,
    targets,
)
from r1deploy.top.view import render
from tests.support.ports import free_port
from tests.support.recorded_http import Answer, RecordedHTTP

FIXTURES = Path(__file__).parent / "fixtures" / "top"
TOOLS = ["get_weather", "get_wikipedia_summary", "get_exchange_rate", "get_public_holidays"]


def scrape(name: str, at: float):
    return parse((FIXTURES / name).read_text(encoding="utf-8"), at)


# ------------------------------------------------------------------ figures


def test_vllm_rates_and_ttft_percentiles_between_two_scrapes():
    view = model_server_view(
        "vllm", "http://x", "vllm", scrape("vllm-1.txt", 10.0), scrape("vllm-2.txt", 12.0)
    )
    assert view.up and view.window_s == 2.0
    assert (view.running, view.waiting) == (3, 1)
    assert view.kv_cache_pct == pytest.approx(42.5)
    # vllm:generation_tokens_total 1000 -> 1500 in 2 s
    assert view.generation_tokens_per_s == pytest.approx(250.0)
    # The 20 first tokens between the scrapes: 10 in (0.1, 0.25], 10 in (0.25, 0.5].
    # p50: rank 10 at the top of (0.1, 0.25]; p95: rank 19, 9/10 into (0.25, 0.5].
    assert view.ttft_over == "window"
    assert view.ttft_p50_s == pytest.approx(0.25)
    assert view.ttft_p95_s == pytest.approx(0.475)
    # finished_reason: stop 25 + length 2 + repetition 0 answered, abort 2, error 1
    assert (view.requests_ok, view.requests_aborted, view.requests_error) == (27, 2, 1)
    assert view.http_5xx == 1


def test_first_frame_ttft_from_the_cumulative_histogram_and_no_rates():
    view = model_server_view("vllm", "http://x", "vllm", None, scrape("vllm-1.txt", 10.0))
    assert view.window_s is None and view.generation_tokens_per_s is None
    # 10 first tokens since start: 5 in (0.04, 0.06], 5 in (0.06, 0.08]
    assert view.ttft_over == "since start"
    assert view.ttft_p50_s == pytest.approx(0.06)
    assert view.ttft_p95_s == pytest.approx(0.078)
    assert (view.running, view.waiting, view.kv_cache_pct) == (2, 0, 25)


def test_no_first_token_between_the_scrapes_falls_back_to_since_start():
    view = model_server_view(
        "vllm", "http://x", "vllm", scrape("vllm-2.txt", 0.0), scrape("vllm-2.txt", 1.0)
    )
    assert view.generation_tokens_per_s == 0
    assert view.ttft_over == "since start"
    # all 30: 5 + 5 below 0.08, 10 in (0.1, 0.25], 10 in (0.25, 0.5]; p50 rank 15 halfway
    assert view.ttft_p50_s == pytest.approx(0.175)


def test_a_restarted_server_counts_from_zero_not_negative():
    view = model_server_view(
        "vllm", "http://x", "vllm", scrape("vllm-2.txt", 0.0), scrape("vllm-1.txt", 2.0)
    )
    assert view.generation_tokens_per_s == pytest.approx(500.0)  # 1000 since the restart
    assert view.ttft_over == "window" and view.ttft_p50_s == pytest.approx(0.06)


def test_llamacpp_what_it_exports_and_n_a_for_the_rest():
    view = model_server_view(
        "llamacpp",
        "http://x",
        "llama_cpp",
        scrape("llamacpp-1.txt", 0.0),
        scrape("llamacpp-2.txt", 2.0),
    )
    assert (view.running, view.waiting) == (2, 1)  # requests_processing, requests_deferred
    assert view.generation_tokens_per_s == pytest.approx(20.0)  # tokens_predicted 300 -> 340
    assert view.kv_cache_pct is None  # the pinned build has no KV cache figure
    assert view.ttft_p50_s is view.ttft_p95_s is view.ttft_over is None
    assert view.requests_ok is view.requests_error is view.http_5xx is None


def test_older_vllm_cache_name_and_an_empty_exposition():
    old = parse("# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.5\n", at=0.0)
    assert model_server_view("vllm", "u", "vllm", None, old).kv_cache_pct == 50
    empty = model_server_view("vllm", "u", "vllm", None, parse("", at=0.0))
    assert empty.up and empty.running is None and empty.generation_tokens_per_s is None


def test_not_prometheus_text_is_an_error_not_a_traceback():
    assert not parse("<html>hello</html>\n", at=0.0).ok


def test_quantile_is_prometheus_histogram_quantile():
    inf = math.inf
    assert quantile(0.5, [(1.0, 0.0), (2.0, 4.0), (inf, 4.0)]) == pytest.approx(1.5)
    assert quantile(0.5, [(1.0, 2.0), (inf, 4.0)]) == 1.0  # in +Inf: the highest bound
    assert quantile(0.5, [(1.0, 0.0), (inf, 0.0)]) is None  # nothing observed
    assert quantile(0.5, [(1.0, 1.0)]) is None  # no +Inf bucket


def test_gateway_calls_by_tool_and_outcome_in_flight_and_rate():
    view = gateway_view(
        "tools-gateway", "http://x", scrape("gateway-1.txt", 5.0), scrape("gateway-2.txt", 7.0)
    )
    rows = {r.tool: r for r in view.tools}
    assert sorted(rows) == sorted(TOOLS)
    weather = rows["get_weather"]
    assert weather.calls["ok"] == 10
    assert (weather.calls["timeout"], weather.calls["upstream_error"]) == (1, 1)
    assert weather.in_flight == 2
    assert weather.calls_per_s == pytest.approx(3.5)  # 5 calls -> 12 in 2 s
    assert rows["get_wikipedia_summary"].calls["invalid_arguments"] == 1
    assert rows["get_exchange_rate"].calls_per_s == 0 and rows["get_exchange_rate"].in_flight == 0
    first = gateway_view("tools-gateway", "http://x", None, scrape("gateway-1.txt", 5.0))
    assert all(r.calls_per_s is None for r in first.tools)


def test_the_gateway_series_top_reads_are_the_ones_the_gateway_exports():
    metrics = GatewayMetrics(TOOLS)
    metrics.tools["get_weather"].count("ok")
    text = metrics.exposition()[0].decode()
    samples = parse(text, at=0.0).samples
    assert GATEWAY_CALLS in samples and GATEWAY_IN_FLIGHT in samples
    view = gateway_view("g", "u", None, parse(text, at=0.0))
    assert {r.tool: r.calls["ok"] for r in view.tools}["get_weather"] == 1


def test_the_text_frame_shows_n_a_where_llamacpp_has_no_metric():
    from rich.console import Console

    llama = model_server_view(
        "llamacpp", "u", "llama_cpp", scrape("llamacpp-1.txt", 0.0), scrape("llamacpp-2.txt", 2.0)
    )
    console = Console(width=100, record=True)
    console.print(render(Frame("now", "direct", [llama], []), "/stack", 1.0))
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in console.export_text().splitlines()
        if line.count("│") == 3
    }
    assert lines["requests running / waiting"] == "2 / 1"
    assert lines["generated tokens/s"] == "20.0"
    for figure in ("KV cache", "TTFT p50 / p95", "finished ok / aborted / error"):
        assert lines[figure] == "n/a"


# ------------------------------------------------------------------ the stack's services


def _stack(tmp_path: Path, vllm_url: str | None, gateway_url: str | None, **extra) -> Path:
    settings = {"runtime": "docker", "engine": "vllm", **extra}
    if vllm_url:
        settings["vllm"] = {"server": "vllm", "service": "vllm", "url": vllm_url}
    if gateway_url:
        settings["gateway"] = {"enabled": True, "service": "tools-gateway", "url": gateway_url}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    (tmp_path / ".env").write_text("VLLM_API_KEY=sk-test-key\n")
    return tmp_path


def test_targets_are_the_inside_urls_of_settings_json(tmp_path):
    stack = StackDir.load(
        _stack(
            tmp_path,
            "http://127.0.0.1:8000/",
            "http://127.0.0.1:8090",
            engine="llama_cpp",
            front_door={"enabled": True, "url": "https://chat.example"},
        )
    )
    assert targets(stack) == [
        Target(MODEL_SERVER, "vllm", "http://127.0.0.1:8000", "llama_cpp", "VLLM_API_KEY"),
        Target(GATEWAY, "tools-gateway", "http://127.0.0.1:8090"),
    ]


@pytest.fixture
def servers():
    started: list[RecordedHTTP] = []

    def start(routes: dict) -> RecordedHTTP:
        started.append(RecordedHTTP(routes))
        return started[-1]

    yield start
    for server in started:
        server.close()


def _metrics(*names: str) -> list[Answer]:
    return [Answer(200, (FIXTURES / n).read_text(encoding="utf-8")) for n in names]


def test_direct_source_sends_the_model_server_key_and_shows_a_down_gateway(servers):
    vllm = servers({"GET /metrics": _metrics("vllm-1.txt", "vllm-2.txt")})
    down = f"http://127.0.0.1:{free_port()}"
    ticks = iter([100.0, 101.0, 102.0, 103.0])
    source = DirectSource(
        [
            Target(MODEL_SERVER, "vllm", vllm.url, "vllm", "VLLM_API_KEY"),
            Target(GATEWAY, "tools-gateway", down),
        ],
        {"VLLM_API_KEY": "sk-test-key"},
        clock=lambda: next(ticks),
    )
    source.frame()
    frame = source.frame()
    model, gateway = frame.model_servers[0], frame.gateways[0]
    assert model.up and model.generation_tokens_per_s == pytest.approx(250.0)  # 500 in 2 s
    assert not gateway.up and gateway.error.startswith(f"{down}/metrics: nothing answers")
    assert vllm.seen[0][:2] == ("GET", "/metrics")


def test_a_refused_key_says_which_variable(servers):
    server = servers({"GET /metrics": Answer(401, {"error": "Invalid API Key"})})
    source = DirectSource([Target(MODEL_SERVER, "llamacpp", server.url, "llama_cpp", "K")], {})
    view = source.frame().model_servers[0]
    assert not view.up and view.error.endswith("HTTP 401 (it asks for a key: .env has no K)")


# ------------------------------------------------------------------ the CLI


def test_once_prints_one_frame_with_rates(servers, tmp_path, capsys):
    vllm = servers({"GET /metrics": _metrics("vllm-1.txt", "vllm-2.txt")})
    gateway = servers({"GET /metrics": _metrics("gateway-1.txt", "gateway-2.txt")})
    stack = _stack(tmp_path, vllm.url, gateway.url)
    code = main(["top", "--stack-dir", str(stack), "--once", "--interval", "0.2"])
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert len(vllm.seen) == len(gateway.seen) == 2
    assert "vllm (vllm)" in out and "42.5 %" in out
    assert "250 ms / 475 ms" in out  # TTFT p50, p95 over the window
    assert "27 / 2 / 1" in out  # finished ok / aborted / error
    assert "get_weather" in out and "upstream_error 1, timeout 1" in out
    assert "rates over" in out and "n/a" not in out.split("Tool gateway")[1]


def test_once_json_and_a_model_server_that_is_down(servers, tmp_path, capsys):
    gateway = servers({"GET /metrics": _metrics("gateway-2.txt")})
    down = f"http://127.0.0.1:{free_port()}"
    stack = _stack(tmp_path, down, gateway.url)
    code = main(["top", "--stack-dir", str(stack), "--once", "--interval", "0", "--format", "json"])
    frame = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert frame["source"] == "direct" and frame["stack_dir"] == str(stack)
    model = frame["model_servers"][0]
    assert model["up"] is False and "nothing answers there" in model["error"]
    tools = {r["tool"]: r for r in frame["gateways"][0]["tools"]}
    assert tools["get_weather"]["calls_per_s"] is None  # one scrape: no rate
    assert tools["get_weather"]["in_flight"] == 2


def test_once_text_with_a_service_down_says_so(tmp_path, capsys):
    down = f"http://127.0.0.1:{free_port()}"
    stack = _stack(tmp_path, down, None)
    assert main(["top", "--stack-dir", str(stack), "--once", "--interval", "0"]) == 0
    out = capsys.readouterr().out
    assert "down" in out and f"vllm is down: {down}/metrics: nothing answers there" in out


def test_a_bad_stack_dir_cannot_run_and_names_the_file(tmp_path, capsys):
    assert main(["top", "--stack-dir", str(tmp_path), "--once"]) == ExitCode.CANNOT_RUN
    err = capsys.readouterr().err
    assert f"{tmp_path / 'settings.json'} does not exist" in err and "make render" in err
    (tmp_path / "settings.json").write_text("{}")
    assert main(["top", "--stack-dir", str(tmp_path), "--once"]) == ExitCode.CANNOT_RUN
    assert "names no model server (vllm.url)" in capsys.readouterr().err
    assert main(["top"]) == ExitCode.CANNOT_RUN
    assert "give --stack-dir DIR" in capsys.readouterr().err


def test_a_zero_interval_is_for_once_only(tmp_path, capsys):
    stack = _stack(tmp_path, "http://127.0.0.1:9", None)
    assert main(["top", "--stack-dir", str(stack), "--interval", "0"]) == ExitCode.CANNOT_RUN
    assert "--interval 0" in capsys.readouterr().err


# ------------------------------------------------------------------ from Prometheus
# prometheus-frame.json: Prometheus 2.42's answer to frame_query(), recorded while it scraped
# three vLLM targets (127.0.0.1:18001 serving vllm-1.txt then vllm-2.txt, :18002 vllm-1.txt,
# :18003 nothing) and a gateway (:18090, gateway-1.txt then gateway-2.txt) every second.


def _prometheus_answer() -> dict:
    return json.loads((FIXTURES / "prometheus-frame.json").read_text(encoding="utf-8"))


def test_prometheus_frame_one_column_per_replica(servers):
    prometheus = servers({"GET /api/v1/query": Answer(200, _prometheus_answer())})
    source = PrometheusSource(prometheus.url + "/", wall_clock=lambda: "now")
    frame = source.frame()
    assert frame.source == "prometheus" and frame.source_url == prometheus.url
    # One query a frame, every figure in it (figures.py's metric names).
    assert len(prometheus.seen) == 1
    sent = parse_qs(urlsplit(prometheus.seen[0][1]).query)["query"][0]
    assert sent == frame_query() and "vllm:num_requests_running" in sent
    views = {v.name: v for v in frame.model_servers}
    assert sorted(views) == ["127.0.0.1:18001", "127.0.0.1:18002", "127.0.0.1:18003"]
    first, second, down = views.values()
    assert first.up and first.window_s == WINDOW_S
    assert (first.running, first.waiting, first.kv_cache_pct) == (3, 1, 42.5)
    assert first.generation_tokens_per_s == pytest.approx(26.83, abs=0.01)
    assert first.ttft_over == "window"
    assert (first.ttft_p50_s, first.ttft_p95_s) == pytest.approx((0.2125, 0.4625))
    assert (first.requests_ok, first.requests_aborted, first.requests_error) == (27, 2, 1)
    assert first.http_5xx == 1
    # No first token in the window: over every request since start, as DirectSource does.
    assert second.generation_tokens_per_s == 0 and second.ttft_over == "since start"
    assert (second.ttft_p50_s, second.ttft_p95_s) == pytest.approx((0.06, 0.078))
    assert second.http_5xx is None  # vllm-1.txt has no 5xx series
    assert not down.up and "up == 0" in down.error
    (gateway,) = frame.gateways
    rows = {r.tool: r for r in gateway.tools}
    assert gateway.up and gateway.name == "127.0.0.1:18090" and sorted(rows) == sorted(TOOLS)
    weather = rows["get_weather"]
    assert (weather.calls["ok"], weather.calls["timeout"], weather.in_flight) == (10, 1, 2)
    assert weather.calls_per_s == pytest.approx(0.1937, abs=1e-4)


def test_prometheus_frame_shown_as_text_and_json(servers, tmp_path, capsys):
    prometheus = servers({"GET /api/v1/query": Answer(200, _prometheus_answer())})
    code = main(["top", "--prometheus", prometheus.url, "--once"])
    out = capsys.readouterr().out
    assert code == ExitCode.OK and len(prometheus.seen) == 1  # no second read for rates
    assert f"from Prometheus {prometheus.url}" in out and "rates over 60.0 s" in out
    assert "127.0.0.1:18001" in out and "127.0.0.1:18002" in out and "42.5 %" in out
    assert "127.0.0.1:18003 is down" in out
    code = main(["top", "--prometheus", prometheus.url, "--once", "--format", "json"])
    frame = json.loads(capsys.readouterr().out)
    assert frame["source"] == "prometheus" and frame["stack_dir"] is None
    assert [m["name"] for m in frame["model_servers"]][:2] == ["127.0.0.1:18001", "127.0.0.1:18002"]


def test_settings_monitoring_url_is_the_default_and_direct_overrides_it(servers, tmp_path, capsys):
    prometheus = servers({"GET /api/v1/query": Answer(200, _prometheus_answer())})
    vllm = servers({"GET /metrics": _metrics("vllm-2.txt")})
    stack = _stack(tmp_path, vllm.url, None, monitoring={"prometheus_url": prometheus.url})
    assert main(["top", "--stack-dir", str(stack), "--once", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "prometheus"
    assert not vllm.seen
    argv = ["top", "--stack-dir", str(stack), "--once", "--interval", "0", "--direct"]
    assert main([*argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "direct" and vllm.seen


def test_prometheus_unreachable_names_the_url_and_the_fix(tmp_path, capsys):
    down = f"http://127.0.0.1:{free_port()}"
    stack = _stack(tmp_path, "http://127.0.0.1:9", None, monitoring={"prometheus_url": down})
    assert main(["top", "--stack-dir", str(stack), "--once"]) == ExitCode.CANNOT_RUN
    err = capsys.readouterr().err
    assert err.startswith(f"r1deploy top: Prometheus at {down}: nothing answers there")
    assert "monitoring.prometheus_url" in err and "--direct" in err


def test_prometheus_errors_say_what(servers, capsys):
    refused = servers({"GET /api/v1/query": Answer(401, "Unauthorized")})
    assert main(["top", "--prometheus", refused.url, "--once"]) == ExitCode.CANNOT_RUN
    err = capsys.readouterr().err
    assert f"Prometheus at {refused.url}: HTTP 401" in err and "--prometheus-password-file" in err
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    broken = servers({"GET /api/v1/query": Answer(400, bad)})
    with pytest.raises(PrometheusError, match="bad_data: parse error"):
        PrometheusSource(broken.url).frame()
    html = servers({"GET /api/v1/query": Answer(200, "<html>front door</html>")})
    with pytest.raises(PrometheusError, match="not an answer of Prometheus' HTTP API"):
        PrometheusSource(html.url).frame()
    assert main(["top", "--prometheus", "http://x", "--direct"]) == ExitCode.CANNOT_RUN
    assert "give one of them" in capsys.readouterr().err


def test_the_prometheus_password_from_a_file_or_the_environment(tmp_path, monkeypatch):
    import argparse

    import httpx

    from r1deploy.top.cli import PROMETHEUS_PASSWORD_ENV, _prometheus_source

    def sent_authorization(password_file, user="ops"):
        args = argparse.Namespace(
            prometheus_user=user, prometheus_password_file=password_file, timeout=1.0
        )
        source = _prometheus_source("http://prometheus.test", args)
        seen = []

        def answer(request):
            seen.append(request.headers.get("authorization"))
            return httpx.Response(200, json={"status": "success", "data": {"result": []}})

        source.http = httpx.Client(transport=httpx.MockTransport(answer), auth=source.http.auth)
        source.frame()
        return seen[0]

    monkeypatch.delenv(PROMETHEUS_PASSWORD_ENV, raising=False)
    assert sent_authorization(None) is None
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    assert sent_authorization(str(password)) == "Basic " + b64encode(b"ops:s3cret").decode()
    monkeypatch.setenv(PROMETHEUS_PASSWORD_ENV, "from-env")
    assert sent_authorization(None, "admin") == "Basic " + b64encode(b"admin:from-env").decode()
