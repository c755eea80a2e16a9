"""A local HTTP server standing in for the upstream APIs that tools.json names.

The real APIs (wttr.in, Wikipedia, ...) are not reachable from the test machines, so
the tests that use this say so in their names (``..._against_stub_upstream``). It
records every request as it arrived on the wire (raw path, headers, body) and answers
by path:

- ``/echo...``           200, JSON of what it received
- ``/slow/<seconds>``    sleeps, then 200
- ``/big/<bytes>``       200 with that many bytes
- ``/redirect?to=URL``   302 to URL
- ``/status/<code>``     that status, a short text body
- ``/weather/<city>``    200, ``<city>: Sunny, +21°C`` (the agent tests' weather API)
- ``/gzip/<layers>/<bytes>``  200, that many zero bytes gzipped ``layers`` times, with
  ``Content-Encoding: gzip, gzip`` (one per layer), whatever the request accepts: a
  decompression bomb when large (790 bytes on the wire carry 400 MB in two layers)
- ``/coded/<coding>``    200, ``hello`` labelled with that Content-Encoding
"""

from __future__ import annotations

import functools
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.ports import bind_free_port


@functools.cache
def gzip_layers(decoded_bytes: int, layers: int) -> bytes:
    """``decoded_bytes`` zero bytes gzipped ``layers`` times, built in 1 MiB steps."""
    block = bytes(1024 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
    parts += [compressor.compress(bytes(decoded_bytes % len(block))), compressor.flush()]
    data = b"".join(parts)
    for _ in range(layers - 1):
        compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        data = compressor.compress(data) + compressor.flush()
    return data


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A caller that gave up (the gateway's timeout tests) is expected, not an error.
        pass


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.raw_path).path

    @property
    def query(self) -> dict:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.raw_path).query).items()}

    def json(self):
        return json.loads(self.body)


@dataclass
class StubUpstream:
    host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                stub.seen.append(seen)
                status, headers, payload = stub.answer(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = _QuietServer((self.host, 0), Handler, bind_and_activate=False)
        self.port = bind_free_port(self.server.socket, self.host)
        self.server.server_activate()
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answer(self, seen: Seen) -> tuple[int, dict, bytes]:
        path = seen.path
        if path.startswith("/echo"):
            echo = {
                "method": seen.method,
                "raw_path": seen.raw_path,
                "body": seen.body.decode(),
                "headers": seen.headers,
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(echo).encode()
        if path.startswith("/slow/"):
            time.sleep(float(path.rsplit("/", 1)[1]))
            return 200, {"Content-Type": "text/plain"}, b"late"
        if path.startswith("/big/"):
            return 200, {"Content-Type": "text/plain"}, b"x" * int(path.rsplit("/", 1)[1])
        if path.startswith("/redirect"):
            return 302, {"Location": seen.query["to"]}, b""
        if path.startswith("/status/"):
            return int(path.rsplit("/", 1)[1]), {"Content-Type": "text/plain"}, b"no such thing"
        if path.startswith("/gzip/"):
            layers, size = (int(part) for part in path.split("/")[2:4])
            coding = ", ".join(["gzip"] * layers)
            return 200, {"Content-Encoding": coding}, gzip_layers(size, layers)
        if path.startswith("/coded/"):
            return 200, {"Content-Encoding": unquote(path.rsplit("/", 1)[1])}, b"hello"
        if path.startswith("/weather/"):
            city = unquote(path.rsplit("/", 1)[1])
            text = f"{city}: Sunny, +21°C".encode()
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, text
        return 404, {"Content-Type": "text/plain"}, b"stub: unknown path"

    def __enter__(self) -> StubUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
