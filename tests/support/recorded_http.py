"""A loopback HTTP server that plays recorded answers: a stand-in for vLLM, Open WebUI, the
gateway or the front door where a test needs only what they answer, not what they do.

``RecordedHTTP({"GET /health": Answer(200, {"status": True})})``; a route is the method and
the path without its query. A route not recorded answers 404. ``Answer.date`` replaces the
Date header (a server whose clock is off). A list of answers is played in turn, its last
one again once it is spent (a figure that changes between two reads). Every request is kept
in ``seen``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int = 200
    body: object = field(default_factory=dict)  # JSON, or str/bytes as they are
    date: str | None = None
    headers: dict = field(default_factory=dict)


class RecordedHTTP:
    def __init__(self, routes: dict[str, Answer | list[Answer]]):
        self.routes = dict(routes)
        self.played: dict[str, int] = {}
        self.seen: list[tuple[str, str, bytes]] = []
        recorded = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                route = f"{self.command} {urlsplit(self.path).path}"
                recorded.seen.append((self.command, self.path, body))
                answer = recorded.routes.get(route, Answer(404, {"detail": "Not Found"}))
                if isinstance(answer, list):
                    turn = recorded.played.get(route, 0)
                    recorded.played[route] = turn + 1
                    answer = answer[min(turn, len(answer) - 1)]
                if isinstance(answer.body, bytes):
                    data = answer.body
                elif isinstance(answer.body, str):
                    data = answer.body.encode()
                else:
                    data = json.dumps(answer.body).encode()
                self.send_response_only(answer.status)
                self.send_header("Date", answer.date or formatdate(usegmt=True))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
