"""The gateway's Prometheus metrics (GET /metrics) against a local stand-in upstream.

Each outcome counts once in its own series, the upstream histogram observes, the
in-flight gauge comes back to 0, and no argument, URL or secret becomes a label value.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from r1deploy.gateway import create_app
from r1deploy.gateway.metrics import CODE_OUTCOMES, OUTCOMES, UPSTREAM_BUCKETS
from tests.support.stub_upstream import StubUpstream
from tests.support.waiting import wait_until
from tests.unit.test_gateway import AUTH, KEY, call, gateway, plugin

CALLS = "r1deploy_gateway_tool_calls_total"
UPSTREAM = "r1deploy_gateway_upstream_seconds"
IN_FLIGHT = "r1deploy_gateway_calls_in_flight"
GATEWAY_SOURCE = Path(__file__).resolve().parents[2] / "r1deploy" / "gateway"


@pytest.fixture
def stub():
    with StubUpstream() as server:
        yield server


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics (parsed by prometheus_client's own parser): value by
    (sample name, labels)."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def outcomes(samples, tool: str) -> dict[str, float]:
    return {outcome: value(samples, CALLS, tool=tool, outcome=outcome) for outcome in OUTCOMES}


def only(outcome: str, count: float = 1) -> dict[str, float]:
    return {o: (count if o == outcome else 0) for o in OUTCOMES}


# --- each outcome in its own series ------------------------------------------------------------


def test_every_series_exists_at_zero_before_the_first_call():
    tools = [
        plugin("lookup", "https://api.example.com/{item}"),
        plugin("other", "https://b.example/"),
    ]
    with gateway(tools) as client:
        samples = scrape(client)
    for tool in ("lookup", "other"):
        assert outcomes(samples, tool) == only("ok", 0)
        assert value(samples, f"{UPSTREAM}_count", tool=tool) == 0
        assert value(samples, IN_FLIGHT, tool=tool) == 0


def test_a_good_call_counts_ok_and_observes_the_upstream_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        assert call(client, "lookup", {"item": "a"}).status_code == 200
        samples = scrape(client)
    assert outcomes(samples, "lookup") == only("ok")
    assert value(samples, f"{UPSTREAM}_count", tool="lookup") == 1
    assert 0 < value(samples, f"{UPSTREAM}_sum", tool="lookup") < 5
    assert value(samples, f"{UPSTREAM}_bucket", tool="lookup", le="+Inf") == 1


@pytest.mark.parametrize(
    ("path", "arguments", "options", "outcome"),
    [
        ("/echo/{item}", {}, {}, "invalid_arguments"),
        ("/echo/{item}", {"item": 3}, {}, "invalid_arguments"),
        ("/echo/{item}/tail", {"item": ""}, {}, "invalid_arguments"),  # build_request
        ("/status/{item}", {"item": "500"}, {}, "upstream_error"),
        ("/status/{item}", {"item": "404"}, {}, "upstream_error"),
        ("/slow/{item}", {"item": "2"}, {"timeout_s": 0.3}, "timeout"),
        ("/echo/{item}", {"item": "a"}, {"allow_private_network": False}, "refused_address"),
        ("/big/{item}", {"item": "1001"}, {"max_response_bytes": 1000}, "too_large"),
        ("/gzip/2/{item}", {"item": "1001"}, {"max_response_bytes": 1000}, "too_large"),
    ],
    ids=[
        "missing-argument",
        "wrong-type",
        "empty-path-segment",
        "upstream-500",
        "upstream-404",
        "timeout",
        "loopback-refused",
        "answer-too-large",
        "decompressed-too-large",
    ],
)
def test_each_failure_counts_in_its_outcome_against_stub_upstream(
    stub, path, arguments, options, outcome
):
    options = {"allow_private_network": True, **options}
    tools = [plugin("lookup", f"{stub.url}{path}", **options)]
    with gateway(tools) as client:
        assert call(client, "lookup", arguments).status_code >= 400
        samples = scrape(client)
    assert outcomes(samples, "lookup") == only(outcome)


def test_unauthorised_bad_json_and_oversized_bodies_count_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        assert call(client, "lookup", {"item": "a"}, headers={}).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert call(client, "lookup", {"item": "a"}, headers=wrong).status_code == 401
        not_json = client.post("/tools/lookup", content=b"{nope", headers=AUTH)
        assert not_json.status_code == 400
        huge = client.post("/tools/lookup", content=b" " * (1024 * 1024 + 1), headers=AUTH)
        assert huge.status_code == 413
        samples = scrape(client)
    assert outcomes(samples, "lookup") == {
        **only("ok", 0),
        "unauthorised": 2,
        "invalid_arguments": 1,
        "too_large": 1,
    }
    assert stub.seen == []
    assert value(samples, f"{UPSTREAM}_count", tool="lookup") == 0, "no upstream call was made"


def test_every_error_code_the_gateway_raises_has_an_outcome():
    raised = set()
    for source in GATEWAY_SOURCE.glob("*.py"):
        raised |= set(re.findall(r'GatewayError\(\s*\d+,\s*"([a-z-]+)"', source.read_text()))
    assert len(raised) >= 10, "the pattern no longer finds the gateway's errors"
    assert raised <= set(CODE_OUTCOMES), f"no outcome for: {sorted(raised - set(CODE_OUTCOMES))}"
    assert set(CODE_OUTCOMES.values()) <= set(OUTCOMES)


# --- the histogram and the gauge ---------------------------------------------------------------


def test_the_histogram_puts_a_timed_out_call_in_its_bucket_against_stub_upstream(stub):
    tools = [plugin("slow", f"{stub.url}/slow/{{item}}", timeout_s=0.3, allow_private_network=True)]
    with gateway(tools) as client:
        assert call(client, "slow", {"item": "2"}).status_code == 504
        samples = scrape(client)
    buckets = {
        le: value(samples, f"{UPSTREAM}_bucket", tool="slow", le=le)
        for le in [*(str(b) for b in UPSTREAM_BUCKETS), "+Inf"]
    }
    assert buckets["0.25"] == 0
    assert buckets["0.5"] == buckets["30.0"] == buckets["+Inf"] == 1
    assert 0.3 <= value(samples, f"{UPSTREAM}_sum", tool="slow") < 0.5
    assert UPSTREAM_BUCKETS[0] == 0.05 and UPSTREAM_BUCKETS[-1] == 30


def test_in_flight_counts_a_call_in_progress_then_returns_to_zero_against_stub_upstream(stub):
    tools = [plugin("slow", f"{stub.url}/slow/{{item}}", timeout_s=10, allow_private_network=True)]
    with gateway(tools) as client:
        answers = []
        caller = threading.Thread(
            target=lambda: answers.append(call(client, "slow", {"item": "1"}))
        )
        caller.start()
        wait_until(
            lambda: value(scrape(client), IN_FLIGHT, tool="slow"),
            5,
            "the call in progress shows as in flight",
            interval_s=0.02,
            until=lambda in_flight: in_flight == 1,
        )
        caller.join(timeout=10)
        assert [a.status_code for a in answers] == [200]
        samples = scrape(client)
    assert value(samples, IN_FLIGHT, tool="slow") == 0
    assert outcomes(samples, "slow") == only("ok")


def test_in_flight_returns_to_zero_after_failures_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/status/{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        call(client, "lookup", {"item": "500"})
        call(client, "lookup", {}, headers={})
        call(client, "lookup", {})
        samples = scrape(client)
    assert value(samples, IN_FLIGHT, tool="lookup") == 0


# --- labels: bounded, and nothing a caller or the tools file holds -----------------------------


def test_no_argument_url_or_secret_appears_in_metrics_against_stub_upstream(stub):
    secret_argument = "argument-value-Zq7w"
    header_secret = "header-secret-Xk3p"
    tools = [
        plugin(
            "lookup",
            f"{stub.url}/echo/{{item}}?fixed=query-value-Jm2n",
            allow_private_network=True,
            headers={"X-Api-Key": {"env": "LOOKUP_KEY"}},
        ),
        plugin("gone", f"{stub.url}/status/{{item}}", allow_private_network=True),
    ]
    with gateway(tools, environ={"LOOKUP_KEY": header_secret}) as client:
        call(client, "lookup", {"item": secret_argument})
        call(client, "lookup", {"item": secret_argument, "extra": secret_argument})
        call(client, "gone", {"item": f"500?{secret_argument}"})
        client.post("/tools/lookup", content=secret_argument.encode(), headers=AUTH)
        client.post(f"/tools/{secret_argument}", json={}, headers=AUTH)  # an unknown tool: 404
        text = client.get("/metrics").text
        samples = scrape(client)
    assert stub.seen, "the calls reached the stand-in upstream"
    for leaked in (secret_argument, header_secret, KEY, "query-value-Jm2n", f":{stub.port}"):
        assert leaked not in text
    tool_labels = {dict(labels)["tool"] for (_name, labels) in samples if "tool" in dict(labels)}
    assert tool_labels == {"lookup", "gone"}, "tool labels only from the registered tools"
    outcome_labels = {
        dict(labels)["outcome"] for (_name, labels) in samples if "outcome" in dict(labels)
    }
    assert outcome_labels == set(OUTCOMES)


def test_metrics_needs_no_key_and_parses():
    with gateway([plugin("lookup", "https://api.example.com/{item}")]) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert families["r1deploy_gateway_tool_calls"].type == "counter"
    assert families[UPSTREAM].type == "histogram"
    assert families[IN_FLIGHT].type == "gauge"
    assert all(f.documentation for f in families.values())


def test_two_apps_in_one_process_keep_their_own_counts_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}", allow_private_network=True)]
    first, second = gateway(tools), gateway(tools)
    with first, second:
        call(first, "lookup", {"item": "a"})
        call(first, "lookup", {"item": "b"})
        assert outcomes(scrape(first), "lookup") == only("ok", 2)
        assert outcomes(scrape(second), "lookup") == only("ok", 0)
    # A third app built after the others starts from zero too.
    assert create_app(tools, KEY, environ={}).state.metrics.tools["lookup"]
