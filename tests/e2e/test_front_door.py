"""The front door for real (docs/front-door.md): Debian's nginx with the configuration the role
renders, in front of the real vLLM and Open WebUI, reached over HTTPS trusting the stack's
CA. The browser journeys (test_journeys.py) and the smoke (test_smoke.py) go through it too."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import ssl
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e import stack as stacklib
from tests.e2e.conftest import (
    FRONT_DOOR_PORTS,
    GATEWAY_PORT,
    VLLM_PORT,
    WEBUI_PORT,
    stack_render_args,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def door(stack, front_door) -> dict:
    settings = stacklib.read_settings(stack)
    env = stacklib.read_env(stack)
    fd = settings["front_door"]
    return {
        "url": fd["url"],
        "ca": str(stack / fd["ca_file"]),
        "ops": env["API_KEY_OPS"],
        "model": settings["model"]["served_name"],
        "server": front_door,
        # Where the native runtime's front door writes its access log.
        "access_log": stack / "native" / "logs" / "front-door-access.log",
    }


def client(door) -> httpx.Client:
    return httpx.Client(
        base_url=door["url"], verify=ssl.create_default_context(cafile=door["ca"]), timeout=60
    )


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("key", [None, "wrong-" + "x" * 34], ids=["no key", "wrong key"])
def test_the_api_refuses_a_missing_or_wrong_key_with_a_json_401(door, key):
    with client(door) as http:
        answer = http.get("/v1/models", headers=bearer(key) if key else {})
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_api_key"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_named_key_reaches_the_model_and_the_log_names_the_application_not_the_key(door):
    with client(door) as http:
        answer = http.post(
            "/v1/chat/completions",
            headers=bearer(door["ops"]),
            json={
                "model": door["model"],
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 32,
            },
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
    log = door["access_log"].read_text()
    assert "client=ops" in log
    assert door["ops"] not in log


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/invocations"),
        ("POST", "/tokenize"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/v1/load"),
        ("GET", "/version"),
    ],
)
def test_the_model_servers_keyless_routes_are_not_reachable_from_outside(door, method, path):
    with client(door) as http:
        answer = http.request(method, path, headers=bearer(door["ops"]), json={})
    assert answer.status_code == 404


def test_plain_http_is_sent_to_https():
    answer = httpx.get(f"http://127.0.0.1:{FRONT_DOOR_PORTS[1]}/c/abc?x=1", follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"] == f"https://127.0.0.1:{FRONT_DOOR_PORTS[0]}/c/abc?x=1"


def test_every_other_service_listens_on_loopback_only():
    sockets = [
        line.split()
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for line in Path(table).read_text().splitlines()[1:]
    ]
    for port in (VLLM_PORT, WEBUI_PORT, GATEWAY_PORT):
        # local address ends in the port; state 0A: listening
        listening = [s for s in sockets if s[1].endswith(f":{port:04X}") and s[3] == "0A"]
        assert listening, f"nothing listens on {port}"
        for socket_line in listening:
            address = socket_line[1].split(":")[0]
            assert address in ("0100007F", "00000000000000000000000001000000"), (port, address)


def test_a_stream_reaches_the_client_token_by_token(door):
    """Server-sent events pass through unbuffered: the proxy writes each delta as vLLM sends it,
    so the client reads them one by one (nginx buffering and compressing the answer hands over
    all of it in one block: checked by hand, 382 deltas in one read). Counted per read rather
    than timed: on two busy cores the client can be descheduled while the whole answer arrives,
    and then every read comes at the same moment; each TLS record still holds what the proxy
    wrote at once. 400 tokens (ignore_eos: the scripted model starts its script again) make a
    few hundred deltas."""
    deltas_per_read = []
    with (
        client(door) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            headers=bearer(door["ops"]),
            json={
                "model": door["model"],
                "stream": True,
                "max_tokens": 400,
                "ignore_eos": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ) as answer,
    ):
        assert answer.status_code == 200
        # Decoded read by read: a gzip-compressing proxy would show as blocks of deltas.
        for chunk in answer.iter_bytes():
            if b"data:" in chunk:
                deltas_per_read.append(chunk.count(b"data:"))
    assert sum(deltas_per_read) >= 200, f"only {sum(deltas_per_read)} deltas"
    deltas_per_read.sort()
    median = deltas_per_read[len(deltas_per_read) // 2]
    reads = len(deltas_per_read)
    assert median <= 2, f"a read carries {median} deltas (median of {reads}): buffered"


def test_a_burst_beyond_the_rate_limit_gets_json_429s_and_the_rest_succeed(door):
    def one(_):
        with client(door) as http:
            return http.get("/v1/models", headers=bearer(door["ops"]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(one, range(80)))
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "80 requests at once were all let through"
    assert all(a.json()["error"]["type"] == "rate_limited" for a in limited)
    assert any(a.status_code == 200 for a in answers)
    time.sleep(3)  # the limit drains at its rate: later tests start clean


def test_a_body_over_the_api_cap_gets_a_json_413(door):
    with client(door) as http:
        answer = http.post(
            "/v1/chat/completions",
            headers=bearer(door["ops"]),
            content=b'{"x": "' + b"y" * 3_000_000 + b'"}',
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"


def test_a_key_removed_from_the_inventory_is_refused_and_the_others_keep_working(
    door, stack, stack_upstream, tmp_path
):
    """Revoking an application: render with the name added, reload, its key works; render
    without it, reload, its key gets 401 while ops keeps working; the kept keys stay."""
    out = stack.parent
    # The stack as rendered for this tier (monitoring included), from its rendered tools.json.
    render = stack_render_args(stack / "tools.json", stack_upstream.url)
    try:
        stacklib.render_test_stack(out, **render, api_keys=["ops", "reports"])
        _reload(door)
        reports = stacklib.read_env(stack)["API_KEY_REPORTS"]
        with client(door) as http:
            assert http.get("/v1/models", headers=bearer(reports)).status_code == 200
        stacklib.render_test_stack(out, **render, api_keys=["ops"])
        _reload(door)
        with client(door) as http:
            assert http.get("/v1/models", headers=bearer(reports)).status_code == 401
            assert http.get("/v1/models", headers=bearer(door["ops"])).status_code == 200
        assert stacklib.read_env(stack)["API_KEY_OPS"] == door["ops"]
    finally:
        stacklib.render_test_stack(out, **render)
        _reload(door)


def _reload(door) -> None:
    """nginx's reload: the master re-reads its configuration on SIGHUP."""
    os.kill(door["server"].process.pid, signal.SIGHUP)
    time.sleep(1.5)
