"""The tool gateway against a local HTTP server standing in for the upstream APIs.

The real APIs are not reachable here; the stub records each request as it arrived on
the wire, so the tests see exactly what left the gateway.
"""

from __future__ import annotations

import ipaddress
import json
import os

import anyio
import pytest
from fastapi.testclient import TestClient

from r1deploy.gateway import GatewayConfigError, create_app, netpolicy
from r1deploy.gateway.netpolicy import refusal
from r1deploy.tools.export import to_openapi
from tests.support.bounded import run_bounded
from tests.support.stub_upstream import StubUpstream

KEY = "test-gateway-key-0123456789abcdef"  # the gateway needs 32 characters or more
AUTH = {"Authorization": f"Bearer {KEY}"}


def plugin(name: str, url: str, method: str = "GET", **extra) -> dict:
    params = extra.pop(
        "params",
        {
            "type": "object",
            "properties": {"item": {"type": "string", "description": "the item"}},
            "required": ["item"],
            "additionalProperties": False,
        },
    )
    return {
        "id": name,
        "name": name,
        "description": f"test tool {name}",
        "params": params,
        "url": url,
        "method": method,
        **extra,
    }


@pytest.fixture
def stub():
    with StubUpstream() as server:
        yield server


@pytest.fixture
def other_host():
    """A second upstream on another host name (localhost vs 127.0.0.1): must stay unreached."""
    with StubUpstream(host="127.0.0.1") as server:
        yield server


def gateway(plugins, environ=None, **kwargs) -> TestClient:
    return TestClient(create_app(plugins, KEY, environ=environ or {}, **kwargs))


def call(client: TestClient, name: str, arguments: object, headers=AUTH):
    return client.post(f"/tools/{name}", json=arguments, headers=headers)


# --- auth, health, spec --------------------------------------------------------------------


def test_calls_and_spec_need_the_bearer_key_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        assert call(client, "lookup", {"item": "a"}, headers={}).status_code == 401
        wrong = call(client, "lookup", {"item": "a"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert client.get("/openapi.json").status_code == 401
        assert stub.seen == []
        assert call(client, "lookup", {"item": "a"}).status_code == 200
        assert len(stub.seen) == 1


def test_health_is_open():
    with gateway([plugin("lookup", "https://api.example.com/{item}")]) as client:
        answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "tools": 1}


def test_openapi_json_is_exactly_the_export():
    tools = [plugin("lookup", "https://api.example.com/{item}")]
    with gateway(tools, server_url="http://gw:8090") as client:
        spec = client.get("/openapi.json", headers=AUTH).json()
    assert spec == to_openapi(tools, "http://gw:8090")
    assert spec["servers"] == [{"url": "http://gw:8090"}]
    with gateway(tools) as client:
        assert "servers" not in client.get("/openapi.json", headers=AUTH).json()


def test_a_gateway_without_a_key_does_not_start():
    with pytest.raises(ValueError, match="TOOLS_GATEWAY_KEY"):
        create_app([], "")


def test_a_gateway_with_a_short_key_does_not_start():
    with pytest.raises(ValueError, match="at least 32 characters.*this one has 31"):
        create_app([], "k" * 31)
    create_app([], "k" * 32)


@pytest.fixture
def serve_tools(tmp_path, monkeypatch, capsys):
    """`r1deploy serve-tools` up to the point where it would serve: exit code, stderr,
    and whether uvicorn was started."""
    import uvicorn

    from r1deploy.cli import main

    tools_file = tmp_path / "tools.json"
    tools_file.write_text(json.dumps([plugin("lookup", "https://api.example.com/{item}")]))
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    monkeypatch.delenv("TOOLS_GATEWAY_KEY", raising=False)

    def run(*argv: str) -> tuple[int, str, bool]:
        code = main(["serve-tools", "--tools", str(tools_file), *argv])
        return code, capsys.readouterr().err, bool(served)

    return run


def key_file(tmp_path, key: str, mode: int):
    path = tmp_path / "gateway.key"
    path.write_text(key + "\n")
    path.chmod(mode)
    return path


def test_serve_tools_takes_the_40_character_keys_the_role_generates(tmp_path, serve_tools):
    role_like = "aB3" * 13 + "x"  # ascii letters and digits, 40 characters
    assert serve_tools("--key-file", str(key_file(tmp_path, role_like, 0o600)))[::2] == (0, True)


def test_serve_tools_refuses_a_short_key_naming_where_it_came_from(
    tmp_path, serve_tools, monkeypatch
):
    monkeypatch.setenv("TOOLS_GATEWAY_KEY", "k")
    code, err, served = serve_tools()
    assert (code, served) == (2, False)
    assert "the bearer key in the TOOLS_GATEWAY_KEY variable has 1 characters" in err
    assert "at least 32" in err
    short = key_file(tmp_path, "k" * 31, 0o600)
    code, err, served = serve_tools("--key-file", str(short))
    assert (code, served) == (2, False)
    assert f"--key-file {short} has 31 characters" in err


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=lambda m: f"{m:04o}")
def test_serve_tools_refuses_a_key_file_others_can_read(tmp_path, serve_tools, mode):
    path = key_file(tmp_path, "k" * 40, mode)
    code, err, served = serve_tools("--key-file", str(path))
    assert (code, served) == (2, False)
    assert f"--key-file {path} is readable by other users (mode {mode:04o})" in err
    assert f"chmod 600 {path}" in err


def test_serve_tools_does_not_wait_on_a_fifo_as_key_file(tmp_path, serve_tools):
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    outcome = run_bounded(serve_tools, "--key-file", str(fifo), timeout=10)
    code, err, served = outcome.result
    assert (code, served) == (2, False)
    assert "a FIFO, not a regular file" in err


# --- argument validation ---------------------------------------------------------------------


def test_invalid_arguments_are_refused_with_their_pointer_against_stub_upstream(stub):
    params = {
        "type": "object",
        "properties": {
            "item": {"type": "string"},
            "filter": {
                "type": "object",
                "properties": {"limit": {"type": "integer", "minimum": 1}},
            },
        },
        "required": ["item"],
    }
    tools = [
        plugin("search", f"{stub.url}/echo", "POST", params=params, allow_private_network=True)
    ]
    with gateway(tools) as client:
        missing = call(client, "search", {})
        nested = call(client, "search", {"item": "a", "filter": {"limit": 0}})
        not_json = client.post("/tools/search", content=b"{nope", headers=AUTH)
    assert missing.status_code == 400
    assert missing.json()["pointer"] == "/item"
    assert "required" in missing.json()["detail"]
    assert nested.status_code == 400
    assert nested.json()["pointer"] == "/filter/limit"
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid-json"
    with gateway(tools) as client:
        huge = client.post("/tools/search", content=b" " * (1024 * 1024 + 1), headers=AUTH)
    assert huge.status_code == 413
    assert stub.seen == [], "nothing may leave the host before the arguments validate"


# --- encoding ---------------------------------------------------------------------------------


def test_get_arguments_travel_in_the_query_after_the_fixed_one_against_stub_upstream(stub):
    params = {
        "type": "object",
        "properties": {
            "item": {"type": "string"},
            "lang": {"type": "string"},
            "limit": {"type": "integer"},
            "exact": {"type": "boolean"},
        },
        "required": ["item"],
    }
    tools = [
        plugin(
            "lookup",
            f"{stub.url}/echo/{{item}}?format=%l:+%C",
            params=params,
            allow_private_network=True,
        )
    ]
    with gateway(tools) as client:
        answer = call(
            client, "lookup", {"item": "Paris", "lang": "fr & en", "limit": 3, "exact": True}
        )
    assert answer.status_code == 200
    seen = stub.seen[0]
    assert seen.method == "GET"
    assert seen.raw_path == "/echo/Paris?format=%l:+%C&lang=fr%20%26%20en&limit=3&exact=true"
    assert seen.body == b""


def test_post_arguments_travel_as_a_json_body_against_stub_upstream(stub):
    params = {
        "type": "object",
        "properties": {"item": {"type": "string"}, "tags": {"type": "array"}},
        "required": ["item"],
    }
    tools = [
        plugin(
            "store", f"{stub.url}/echo/{{item}}", "PUT", params=params, allow_private_network=True
        )
    ]
    with gateway(tools) as client:
        answer = call(client, "store", {"item": "x y", "tags": ["a", "b"]})
    assert answer.status_code == 200
    seen = stub.seen[0]
    assert (seen.method, seen.raw_path) == ("PUT", "/echo/x%20y")
    assert seen.json() == {"tags": ["a", "b"]}
    assert seen.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("argument", "wire_segment"),
    [
        ("../admin", "%2E%2E%2Fadmin"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("a/b", "a%2Fb"),
        ("x%2Fy", "x%252Fy"),
        ("user@evil.example", "user%40evil%2Eexample"),
        ("a?b=c#d", "a%3Fb%3Dc%23d"),
        ("Łódź", "%C5%81%C3%B3d%C5%BA"),
    ],
)
def test_path_arguments_stay_one_segment_on_the_same_host_against_stub_upstream(
    stub, argument, wire_segment
):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}/tail", allow_private_network=True)]
    with gateway(tools) as client:
        answer = call(client, "lookup", {"item": argument})
    assert answer.status_code == 200
    assert [s.raw_path for s in stub.seen] == [f"/echo/{wire_segment}/tail"]
    assert stub.seen[0].headers["Host"] == f"127.0.0.1:{stub.port}"


def test_at_sign_argument_cannot_reach_another_host_against_stub_upstream(stub, other_host):
    tools = [plugin("lookup", f"{stub.url}/echo{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        answer = call(client, "lookup", {"item": f"@127.0.0.1:{other_host.port}/steal"})
    assert answer.status_code == 200
    assert other_host.seen == []
    assert stub.seen[0].raw_path == f"/echo%40127%2E0%2E0%2E1%3A{other_host.port}%2Fsteal"


# --- upstream behaviour -----------------------------------------------------------------------


def test_slow_upstream_times_out_with_504_against_stub_upstream(stub):
    tools = [plugin("slow", f"{stub.url}/slow/{{item}}", timeout_s=0.3, allow_private_network=True)]
    with gateway(tools) as client:
        answer = call(client, "slow", {"item": "2"})
    assert answer.status_code == 504
    assert "0.3 s" in answer.json()["detail"]
    assert answer.json()["error"] == "upstream-timeout"


def test_answer_over_the_size_cap_is_refused_with_502_against_stub_upstream(stub):
    tools = [
        plugin(
            "big", f"{stub.url}/big/{{item}}", max_response_bytes=1000, allow_private_network=True
        )
    ]
    with gateway(tools) as client:
        small = call(client, "big", {"item": "1000"})
        large = call(client, "big", {"item": "1001"})
    assert small.status_code == 200
    assert len(small.content) == 1000
    assert large.status_code == 502
    assert large.json()["error"] == "response-too-large"
    assert "max_response_bytes (1000 bytes)" in large.json()["detail"]


def test_the_gateway_asks_for_uncompressed_answers_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        call(client, "lookup", {"item": "a"})
    assert stub.seen[0].headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("layers", [1, 2])
def test_compressed_answer_is_decoded_up_to_the_cap_against_stub_upstream(stub, layers):
    tools = [
        plugin(
            "packed",
            f"{stub.url}/gzip/{layers}/{{item}}",
            max_response_bytes=1000,
            allow_private_network=True,
        )
    ]
    with gateway(tools) as client:
        fits = call(client, "packed", {"item": "1000"})
        over = call(client, "packed", {"item": "1001"})
    assert fits.status_code == 200
    assert fits.content == bytes(1000)
    assert "content-encoding" not in fits.headers
    assert over.status_code == 502
    assert over.json()["error"] == "response-too-large"


@pytest.mark.parametrize(
    ("coding", "why"),
    [
        ("br", "Content-Encoding br is not decoded here"),
        ("gzip, gzip, gzip", "3 layers"),
        ("gzip", "does not decode"),  # the body is plain "hello"
    ],
)
def test_answer_the_gateway_cannot_decode_is_a_502_against_stub_upstream(stub, coding, why):
    tools = [
        plugin(
            "coded",
            f"{stub.url}/coded/{{item}}",
            params={"type": "object", "properties": {"item": {"type": "string"}}},
            allow_private_network=True,
        )
    ]
    with gateway(tools) as client:
        answer = call(client, "coded", {"item": coding})
    assert answer.status_code == 502
    assert answer.json()["error"] == "upstream-bad-encoding"
    assert why in answer.json()["detail"]


def test_upstream_error_status_is_reported_as_502_against_stub_upstream(stub):
    tools = [plugin("gone", f"{stub.url}/status/{{item}}", allow_private_network=True)]
    with gateway(tools) as client:
        answer = call(client, "gone", {"item": "404"})
    assert answer.status_code == 502
    assert "HTTP 404: no such thing" in answer.json()["detail"]


def test_redirect_to_another_host_is_not_followed_against_stub_upstream(stub, other_host):
    target = f"http://localhost:{other_host.port}/echo/stolen"
    tools = [
        plugin(
            "hop",
            f"{stub.url}/redirect",
            allow_private_network=True,
            params={"type": "object", "properties": {"to": {"type": "string"}}},
        )
    ]
    with gateway(tools) as client:
        answer = call(client, "hop", {"to": target})
    assert answer.status_code == 502
    assert answer.json()["error"] == "redirect-off-host"
    assert other_host.seen == []


def test_redirect_on_the_same_host_is_followed_against_stub_upstream(stub):
    tools = [
        plugin(
            "hop",
            f"{stub.url}/redirect",
            allow_private_network=True,
            params={"type": "object", "properties": {"to": {"type": "string"}}},
        )
    ]
    with gateway(tools) as client:
        answer = call(client, "hop", {"to": "/echo/landed"})
    assert answer.status_code == 200
    assert answer.json()["raw_path"] == "/echo/landed"


def test_loopback_upstream_is_refused_without_allow_private_network_against_stub_upstream(stub):
    tools = [plugin("lookup", f"{stub.url}/echo/{{item}}")]
    with gateway(tools) as client:
        answer = call(client, "lookup", {"item": "a"})
    assert answer.status_code == 502
    assert answer.json()["error"] == "address-refused"
    assert "loopback" in answer.json()["detail"]
    assert "allow_private_network" in answer.json()["detail"]
    assert stub.seen == []


def test_metadata_address_is_refused():
    tools = [plugin("meta", "http://169.254.169.254/latest/meta-data/{item}")]
    with gateway(tools) as client:
        answer = call(client, "meta", {"item": "iam"})
    assert answer.status_code == 502
    assert answer.json()["error"] == "address-refused"
    assert "169.254.169.254 (link-local / cloud metadata address)" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "link-local / cloud metadata address"),
        ("fd00:ec2::254", "link-local / cloud metadata address"),
        ("::ffff:169.254.169.254", "link-local / cloud metadata address"),
        ("fe80::1", "link-local address"),
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("10.1.2.3", "private address"),
        ("192.168.0.1", "private address"),
        ("0.0.0.0", "unspecified address"),
        ("100.64.0.1", "non-public address"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
        # IPv6 forms that carry an IPv4 address are judged by that address.
        (
            "64:ff9b::a9fe:a9fe",
            "NAT64 address carrying link-local / cloud metadata address 169.254.169.254",
        ),
        ("64:ff9b::7f00:1", "NAT64 address carrying loopback address 127.0.0.1"),
        ("64:ff9b::808:808", None),
        ("64:ff9b:1::a00:1", "local-use NAT64 address"),
        ("::127.0.0.1", "IPv4-compatible address carrying loopback address 127.0.0.1"),
        ("::ffff:0:7f00:1", "IPv4-translated address carrying loopback address 127.0.0.1"),
        ("::ffff:0:808:808", None),
        ("2002:7f00:1::1", "6to4 address carrying loopback address 127.0.0.1"),
        (
            "2002:a9fe:a9fe::1",
            "6to4 address carrying link-local / cloud metadata address 169.254.169.254",
        ),
        ("2002:808:808::1", None),
        # Teredo: server 65.54.227.120, client 127.0.0.1 / 10.0.0.1 (stored inverted).
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "Teredo address carrying loopback address 127.0.0.1",
        ),
        (
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            "Teredo address carrying private address 10.0.0.1",
        ),
    ],
)
def test_address_policy(address, why):
    assert refusal(address) == why


# --- every resolved address is checked, and the connect uses a checked one -----------------

PUBLIC = "93.184.215.14"
CONNECTED = object()  # what the recording backend returns for a connection


class RecordingBackend:
    """Stands in for the socket layer: records the address each connect goes to. Given a
    name instead of an address it resolves it again, as the operating system would."""

    def __init__(self):
        self.connected: list[str] = []

    async def connect_tcp(self, host, port, **_options):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = (await netpolicy.resolve(host, port, None))[0]
        self.connected.append(host)
        return CONNECTED


def resolver(monkeypatch, *answers: list[str]) -> list[str]:
    """Make the gateway's resolver answer each lookup with the next list; returns the
    names looked up."""
    lookups, queue = [], list(answers)

    async def resolve(host, port, timeout):
        lookups.append(host)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    monkeypatch.setattr(netpolicy, "resolve", resolve)
    return lookups


def vetted_backend() -> tuple[netpolicy.VettedNetworkBackend, RecordingBackend]:
    backend = netpolicy.VettedNetworkBackend(allow_private_network=False)
    backend._inner = recorder = RecordingBackend()
    return backend, recorder


@pytest.mark.parametrize(
    "answers",
    [
        [PUBLIC, "10.0.0.5"],
        ["10.0.0.5", PUBLIC],
        [PUBLIC, "2606:4700::1111", "169.254.169.254"],
        ["2606:4700::1111", "::ffff:127.0.0.1"],
    ],
)
def test_a_name_with_any_non_public_answer_is_refused_before_connecting(monkeypatch, answers):
    resolver(monkeypatch, answers)
    backend, recorder = vetted_backend()
    with pytest.raises(netpolicy.AddressRefused) as raised:
        anyio.run(backend.connect_tcp, "api.example.test", 443)
    refused = next(a for a in answers if netpolicy.refusal(a))
    assert raised.value.address == refused
    assert recorder.connected == [], "no connection may start while an answer is refused"


def test_the_connect_goes_to_the_vetted_address_not_to_a_fresh_lookup(monkeypatch):
    # DNS rebinding: public when vetted, the metadata service on the next lookup.
    lookups = resolver(monkeypatch, [PUBLIC], ["169.254.169.254"])
    backend, recorder = vetted_backend()
    assert anyio.run(backend.connect_tcp, "api.example.test", 443) is CONNECTED
    assert recorder.connected == [PUBLIC]
    assert lookups == ["api.example.test"], "one lookup per connection"
    # The next connection looks the name up again and is refused on the new answer.
    with pytest.raises(netpolicy.AddressRefused, match="169.254.169.254"):
        anyio.run(backend.connect_tcp, "api.example.test", 443)
    assert recorder.connected == [PUBLIC]


def test_a_public_and_a_private_answer_are_refused_through_the_gateway(monkeypatch, stub):
    resolver(monkeypatch, [PUBLIC, "127.0.0.1"])
    url = f"http://two-answers.example.test:{stub.port}/echo/{{item}}"
    with gateway([plugin("lookup", url, timeout_s=2)]) as client:
        answer = call(client, "lookup", {"item": "a"})
    assert answer.status_code == 502
    assert answer.json()["error"] == "address-refused"
    assert "resolves to 127.0.0.1 (loopback address)" in answer.json()["detail"]
    assert stub.seen == []


# --- configuration from the environment ------------------------------------------------------


def test_header_secrets_come_from_named_env_vars_against_stub_upstream(stub):
    tools = [
        plugin(
            "lookup",
            f"{stub.url}/echo/{{item}}",
            allow_private_network=True,
            headers={"X-Api-Key": {"env": "LOOKUP_KEY", "prefix": "Token "}, "Accept": "text/x"},
        )
    ]
    with gateway(tools, environ={"LOOKUP_KEY": "s3cret"}) as client:
        call(client, "lookup", {"item": "a"})
    assert stub.seen[0].headers["X-Api-Key"] == "Token s3cret"
    assert stub.seen[0].headers["Accept"] == "text/x"


def test_missing_header_secret_stops_startup_naming_plugin_and_variable():
    tools = [
        plugin(
            "lookup",
            "https://api.example.com/{item}",
            headers={"Authorization": {"env": "LOOKUP_TOKEN"}},
        )
    ]
    with pytest.raises(GatewayConfigError) as raised:
        create_app(tools, KEY, environ={})
    assert 'plugin "lookup"' in str(raised.value)
    assert "LOOKUP_TOKEN" in str(raised.value)


def test_base_url_env_moves_scheme_and_host_against_stub_upstream(stub):
    tools = [
        plugin(
            "lookup",
            "https://api.example.com/v1/{item}?x=1",
            base_url_env="LOOKUP_BASE_URL",
            allow_private_network=True,
        )
    ]
    with gateway(tools, environ={"LOOKUP_BASE_URL": f"{stub.url}/echo"}) as client:
        answer = call(client, "lookup", {"item": "a"})
    assert answer.status_code == 200
    assert stub.seen[0].raw_path == "/echo/v1/a?x=1"


def test_bad_base_url_env_stops_startup_naming_the_variable():
    tools = [plugin("lookup", "https://api.example.com/{item}", base_url_env="LOOKUP_BASE_URL")]
    with pytest.raises(GatewayConfigError, match="LOOKUP_BASE_URL"):
        create_app(tools, KEY, environ={"LOOKUP_BASE_URL": "not a url"})


def test_serve_tools_cli_refuses_to_start_without_a_key(tmp_path, capsys, monkeypatch):
    from r1deploy.cli import main

    tools_file = tmp_path / "tools.json"
    tools_file.write_text(json.dumps([plugin("lookup", "https://api.example.com/{item}")]))
    monkeypatch.delenv("TOOLS_GATEWAY_KEY", raising=False)
    assert main(["serve-tools", "--tools", str(tools_file)]) == 2
    assert "TOOLS_GATEWAY_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("http://0177.0.0.1:8080", "write 127.0.0.1"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
    ],
)
def test_base_url_env_the_validator_would_refuse_stops_startup(override, problem):
    tools = [plugin("lookup", "https://api.example.com/{item}", base_url_env="LOOKUP_BASE_URL")]
    with pytest.raises(GatewayConfigError, match="LOOKUP_BASE_URL") as raised:
        create_app(tools, KEY, environ={"LOOKUP_BASE_URL": override})
    assert problem in str(raised.value)
