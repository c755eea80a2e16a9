"""A stand-in OpenAI-compatible server that streams instantly, for what a real vLLM cannot show
here: the client's own ceiling (no model time at all) and injected faults (errors mid-run).

Tests that use it say so in their names (``..._against_instant_stub_server``).
Run alone: ``python -m tests.stubs.instant_openai --port 18250``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.support.waiting import answers, wait_until

PORT_RANGE = range(18220, 18300)  # this helper's loopback ports


def free_port() -> int:
    for port in PORT_RANGE:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


@dataclass
class Faults:
    """What to break. Request numbers count chat completions from 1."""

    http_500_every: int = 0  # every k-th request answers HTTP 500
    down_after: int = 0  # requests after this many answer... nothing: the connection is cut
    cut_stream_every: int = 0  # every k-th request's stream stops halfway, without [DONE]
    error_event_every: int = 0  # every k-th request sends an error event mid-stream
    omit_usage: bool = False
    no_tokenize: bool = False  # like Open WebUI: no /tokenize, prompt lengths from usage


class InstantStub:
    def __init__(self, model: str = "stub-model", faults: Faults | None = None) -> None:
        self.model = model
        self.faults = faults or Faults()
        self.requests = 0
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []
        self._streams: dict[tuple, bytes] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/version", self.version)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)
        app.router.add_post("/v1/chat/completions", self.chat)
        # Open WebUI's routes: sign-in gives a token the others require.
        app.router.add_post("/api/v1/auths/signin", self.signin)
        app.router.add_get("/api/models", self.webui_guard(self.models))
        app.router.add_get("/api/version", self.version)
        app.router.add_post("/api/chat/completions", self.webui_guard(self.chat))
        return app

    WEBUI_ADMIN = {"email": "admin@r1deploy.local", "password": "pw-stub"}
    WEBUI_TOKEN = "webui-token-stub"

    async def signin(self, request: web.Request) -> web.Response:
        if await request.json() != self.WEBUI_ADMIN:
            return web.json_response({"detail": "wrong credentials"}, status=400)
        return web.json_response({"token": self.WEBUI_TOKEN, "token_type": "Bearer"})

    def webui_guard(self, handler):
        async def guarded(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {self.WEBUI_TOKEN}":
                return web.json_response({"detail": "Not authenticated"}, status=401)
            return await handler(request)

        return guarded

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "root": self.model,
                        "owned_by": "stub",
                        "max_model_len": 4096,
                    }
                ],
            }
        )

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "stub"})

    # One token per whitespace-separated word.
    def _ids(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self.vocab:
                self.vocab[word] = len(self.words)
                self.words.append(word)
            ids.append(self.vocab[word])
        return ids

    async def tokenize(self, request: web.Request) -> web.Response:
        if self.faults.no_tokenize:
            return web.Response(status=404, text="Not Found")
        body = await request.json()
        ids = self._ids(body["prompt"])
        return web.json_response({"tokens": ids, "count": len(ids)})

    async def detokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"prompt": " ".join(self.words[i] for i in body["tokens"])})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        number, faults = self.requests, self.faults
        body = await request.json()
        if body.get("model") != self.model:
            return web.json_response(
                {
                    "object": "error",
                    "message": f"The model `{body.get('model')}` does not exist.",
                    "type": "NotFoundError",
                    "code": 404,
                },
                status=404,
            )
        if faults.down_after and number > faults.down_after:
            request.transport.close()
            return web.Response()
        if faults.http_500_every and number % faults.http_500_every == 0:
            return web.json_response(
                {
                    "object": "error",
                    "message": "injected failure",
                    "type": "InternalServerError",
                    "code": 500,
                },
                status=500,
            )
        tokens = int(body.get("max_tokens") or 16)
        prompt_tokens = len(str(body["messages"][0]["content"]).split())
        if not body.get("stream"):
            return web.json_response(
                {
                    "object": "chat.completion",
                    "model": self.model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": " t0" * tokens}}
                    ],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        broken = (faults.cut_stream_every and number % faults.cut_stream_every == 0) or (
            faults.error_event_every and number % faults.error_event_every == 0
        )
        if not broken:
            # The whole stream in one write: the server costs (almost) nothing, so a run
            # against it measures the client.
            await response.write(self._stream(tokens, prompt_tokens))
            return response
        head = {"id": f"chatcmpl-{number}", "object": "chat.completion.chunk", "model": self.model}

        async def send(payload: dict | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            await response.write(f"data: {data}\n\n".encode())

        await send(
            {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        )
        for i in range(tokens):
            if i == tokens // 2:
                if faults.cut_stream_every:
                    request.transport.close()
                    return response
                await send({"error": {"message": "injected mid-stream error", "code": 500}})
                await send("[DONE]")
                return response
            await send({**head, "choices": [{"index": 0, "delta": {"content": f" t{i}"}}]})
        return response

    def _stream(self, tokens: int, prompt_tokens: int) -> bytes:
        """The SSE body of a complete answer (cached: the stub must not be the bottleneck)."""
        key = (tokens, prompt_tokens, self.faults.omit_usage)
        if key not in self._streams:
            head = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": self.model}
            events = [
                {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            ]
            events += [
                {
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": f" t{i}"},
                            "finish_reason": None if i < tokens - 1 else "length",
                        }
                    ],
                }
                for i in range(tokens)
            ]
            if not self.faults.omit_usage:
                events.append(
                    {
                        **head,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": tokens,
                            "total_tokens": prompt_tokens + tokens,
                        },
                    }
                )
            body = "".join(f"data: {json.dumps(event)}\n\n" for event in events)
            self._streams[key] = (body + "data: [DONE]\n\n").encode()
        return self._streams[key]


class StubThread:
    """Serve an InstantStub from a background thread (its own event loop); over HTTPS with
    ``ssl_context`` (a server context with its certificate loaded)."""

    def __init__(
        self, stub: InstantStub, port: int | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.stub = stub
        self.port = port or free_port()
        self.ssl_context = ssl_context
        self.base_url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.stub.app(), access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> StubThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stub server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def running(repo: Path) -> Iterator[str]:
    """This stub in its own process on a free port, once it answers; yields its base URL.
    The benches measure a client against it, so it must not share their process."""
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.stubs.instant_openai", "--port", str(port)],
        cwd=repo,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        models = url + "/v1/models"
        wait_until(lambda: answers(models), 10, f"the stub answers {models}", interval_s=0.1)
        yield url
    finally:
        stub.terminate()
        stub.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--model", default="stub-model")
    args = parser.parse_args()
    port = args.port or free_port()
    print(f"http://127.0.0.1:{port}", flush=True)
    web.run_app(
        InstantStub(args.model).app(), host="127.0.0.1", port=port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
