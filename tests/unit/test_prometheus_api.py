"""r1deploy/monitoring/prometheus.py: the one reader of Prometheus' HTTP API that `top` and
`doctor` share, and the kind of error it gives for each way a request goes wrong."""

from __future__ import annotations

import httpx
import pytest

from r1deploy.monitoring import prometheus
from r1deploy.monitoring.prometheus import PrometheusAPIError, api_get, instant_query


def answering(status: int, **body) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, **body)

    return httpx.Client(transport=httpx.MockTransport(answer))


def error_of(http: httpx.Client, path: str = "/api/v1/targets") -> PrometheusAPIError:
    with pytest.raises(PrometheusAPIError) as caught:
        api_get(http, "http://prometheus.test/", path, timeout_s=1.0)
    return caught.value


def test_data_and_an_instant_vector():
    vector = {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}
    http = answering(200, json={"status": "success", "data": vector})
    assert api_get(http, "http://p/", "/api/v1/query", timeout_s=1.0) == vector
    assert instant_query(http, "http://p", "up", timeout_s=1.0) == vector["result"]
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
    assert instant_query(answering(200, json=scalar), "http://p", "1", timeout_s=1.0) == []


def test_each_way_to_fail_has_its_kind_and_reason():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    down = error_of(httpx.Client(transport=httpx.MockTransport(refuse)))
    assert (down.kind, down.status_code) == (prometheus.UNREACHABLE, None)
    assert down.url == "http://prometheus.test/api/v1/targets"
    assert down.reason.startswith("nothing answers there")
    refused = error_of(answering(401, text="Unauthorized"))
    assert (refused.kind, refused.reason) == (prometheus.REFUSED, "HTTP 401")
    page = error_of(answering(404, text="<html>front door</html>"))
    assert page.kind == prometheus.NOT_API
    assert str(page).endswith("HTTP 404, not an answer of Prometheus' HTTP API")
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    broken = error_of(answering(400, json=bad), "/api/v1/query")
    assert (broken.kind, str(broken)) == (
        prometheus.API_ERROR,
        "http://prometheus.test/api/v1/query: bad_data: parse error",
    )


def test_the_client_sends_basic_auth_and_follows_redirects():
    assert prometheus.client().follow_redirects
    assert isinstance(prometheus.client(auth=("ops", "s3cret")).auth, httpx.BasicAuth)
