"""The agent loop's bookkeeping, against a stub chat server standing in for vLLM (the real
model round-trip is in tests/e2e/test_agent_roundtrip.py) and the real gateway app."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import uvicorn

from r1deploy.agent.loop import Endpoint, run_agent, tool_choice_value
from r1deploy.gateway import create_app
from r1deploy.tools.export import to_openai
from tests.support.ports import bind_free_port, free_port
from tests.support.stub_upstream import StubUpstream

# The gateway refuses bearer keys under 32 characters.
KEY = "agent-loop-gateway-key-0123456789"
WEATHER = {
    "id": "weather_tool",
    "name": "get_weather",
    "description": "weather",
    "params": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "city"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "url": "http://127.0.0.1:1/weather/{city}",
    "method": "GET",
    "base_url_env": "WEATHER_BASE_URL",
    "allow_private_network": True,
}


class StubModel:
    """Answers each chat request from a list of assistant messages; records the requests."""

    def __init__(self, replies: list[dict]):
        self.replies, self.requests = list(replies), []
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                model.requests.append(body)
                payload = json.dumps(
                    {"choices": [{"message": model.replies.pop(0), "finish_reason": "stop"}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.port = bind_free_port(self.server.socket)
        self.server.server_activate()
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway_url():
    with StubUpstream() as upstream:
        app = create_app([WEATHER], KEY, environ={"WEATHER_BASE_URL": upstream.url})
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(10)


def call(city: str, call_id: str = "call_1") -> dict:
    arguments = json.dumps({"city": city})
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }


def agent(model: StubModel, gateway_url: str, **kwargs):
    return run_agent(
        "Weather in Paris?",
        llm=Endpoint(f"http://127.0.0.1:{model.port}/v1", "vk"),
        model="m",
        gateway=Endpoint(gateway_url, KEY),
        tools=to_openai([WEATHER]),
        **kwargs,
    )


def test_tool_result_is_fed_back_and_the_answer_returned_against_stub_model(gateway_url):
    model = StubModel(
        [
            {"content": None, "reasoning": "need the weather", "tool_calls": [call("Paris")]},
            {"content": "It is sunny.", "reasoning_content": "the tool said so"},
        ]
    )
    try:
        result = agent(model, gateway_url, tool_choice="get_weather")
    finally:
        model.close()
    assert result.answer == "It is sunny."
    assert result.reasoning == ["need the weather", "the tool said so"]
    first, second = model.requests
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert second["tool_choice"] == "auto"
    assistant, tool = second["messages"][1:]
    assert assistant["tool_calls"] == [call("Paris")]
    assert "reasoning" not in assistant
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1"
    assert tool["content"] == "Paris: Sunny, +21°C"  # what the upstream answered


def test_gateway_refusal_reaches_the_model_as_the_tool_result_against_stub_model(gateway_url):
    bad = {
        "id": "c",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"town": "Paris"})},
    }
    model = StubModel([{"content": "", "tool_calls": [bad]}, {"content": "Sorry."}])
    try:
        result = agent(model, gateway_url)
    finally:
        model.close()
    assert result.tool_runs[0].status == 400
    tool_message = model.requests[1]["messages"][-1]
    assert json.loads(tool_message["content"])["pointer"] == "/city"


def test_rounds_are_bounded_and_the_last_one_forbids_tools_against_stub_model(gateway_url):
    model = StubModel(
        [
            {"content": "", "tool_calls": [call("A", "1")]},
            {"content": "", "tool_calls": [call("B", "2")]},
            {"content": "Done."},
        ]
    )
    try:
        result = agent(model, gateway_url, tool_choice="required", max_rounds=3)
    finally:
        model.close()
    assert [r["tool_choice"] for r in model.requests] == ["required", "auto", "none"]
    assert result.answer == "Done."
    assert len(result.tool_runs) == 2


def test_unknown_tool_choice_is_refused_before_any_request():
    with pytest.raises(ValueError, match="is not a tool"):
        run_agent(
            "q",
            llm=Endpoint("http://127.0.0.1:1"),
            model="m",
            gateway=Endpoint("http://127.0.0.1:1"),
            tools=to_openai([WEATHER]),
            tool_choice="get_wether",
        )
    assert tool_choice_value("auto") == "auto"
