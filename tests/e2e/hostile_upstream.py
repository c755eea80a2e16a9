"""A hostile upstream API and the runner that puts it, the real gateway and the client
in one loopback-only network namespace (tests/e2e/test_gateway_hostile.py, issue 14).

Two commands, both run inside the namespace (``unshare --net``):

``python -m tests.e2e.hostile_upstream serve``
    The hostile upstream: an HTTP server on 127.0.0.1:UPSTREAM_PORT and a second one on
    127.0.0.1:ELSEWHERE_PORT (what a redirect must not reach). It answers by path; see
    ``ANSWERS``. ``/hits`` returns how often each path was asked for, on which port, and
    how many bytes each answer wrote before the caller went away.

``python -m tests.e2e.hostile_upstream inside --gateway R1DEPLOY --tools FILE --log FILE``
    The namespace's first process: brings ``lo`` up, starts the upstream and the gateway
    (``r1deploy serve-tools``, the console script, on 127.0.0.1:GATEWAY_PORT, its key
    from TOOLS_GATEWAY_KEY), prints one JSON line ``{"ready": ..., "gateway_pid": ...}``,
    then answers one JSON line per JSON line read on stdin (``OPS``): the test's client
    calls, made from inside the namespace. Stopped by closing its stdin; it stops the
    gateway and the upstream on the way out.

Stdlib only apart from what the test passes in, so it runs under any Python 3.11.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# The namespace is new and empty: fixed ports cannot collide with anything on the host.
UPSTREAM_PORT, ELSEWHERE_PORT, GATEWAY_PORT = 8080, 8081, 8090
BOMB_BYTES = 400_000_000  # decoded size of each bomb: 400 MB of zeros
CHUNK = 64 * 1024
# How long an endless answer keeps writing when its caller does not go away.
ENDLESS_FOR_S = 60.0
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def compressed_layers(decoded_bytes: int, wbits: tuple[int, ...]) -> bytes:
    """``decoded_bytes`` zero bytes compressed once per entry of ``wbits`` (zlib's window
    bits: ``MAX_WBITS | 16`` gzip, ``MAX_WBITS`` zlib-wrapped deflate), in 1 MiB steps."""
    data = b""
    for index, bits in enumerate(wbits):
        compressor = zlib.compressobj(9, zlib.DEFLATED, bits)
        if index == 0:
            block = bytes(1024 * 1024)
            parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
            parts.append(compressor.compress(bytes(decoded_bytes % len(block))))
        else:
            parts = [compressor.compress(data)]
        data = b"".join(parts) + compressor.flush()
    return data


GZIP, DEFLATE = zlib.MAX_WBITS | 16, zlib.MAX_WBITS
BOMBS = {
    # Content-Encoding lists the codings in the order applied.
    "/gzip-bomb": ("gzip, gzip", (GZIP, GZIP)),
    "/deflate-bomb": ("deflate, deflate", (DEFLATE, DEFLATE)),
}


def decoded_size(payload: bytes, header: str, limit: int) -> int:
    """How many bytes ``payload`` decodes to (streamed: never holds more than 64 KiB),
    stopping once past ``limit``."""
    layers = [zlib.decompressobj(zlib.MAX_WBITS | 32) for _ in header.split(",")]

    def push(index: int, data: bytes) -> int:
        if index == len(layers):
            return len(data)
        total, layer = 0, layers[index]
        while data and not layer.eof:
            total += push(index + 1, layer.decompress(data, CHUNK))
            data = layer.unconsumed_tail
        while not layer.eof:  # output still inside zlib
            out = layer.decompress(b"", CHUNK)
            if not out:
                break
            total += push(index + 1, out)
        return total

    total = 0
    for start in range(0, len(payload), 256):
        total += push(0, payload[start : start + 256])
        if total > limit:
            break
    return total


# --- the upstream --------------------------------------------------------------------------


class Upstream:
    def __init__(self):
        self.bombs = {
            path: (header, compressed_layers(BOMB_BYTES, bits))
            for path, (header, bits) in BOMBS.items()
        }
        self.hits: list[dict] = []
        self.lock = threading.Lock()

    def record(self, port: int, path: str) -> dict:
        hit = {"port": port, "path": path, "sent": 0}
        with self.lock:
            self.hits.append(hit)
        return hit


ANSWERS = """\
/echo               200, JSON naming the path (the normal call)
/gzip-bomb          200, Content-Encoding: gzip, gzip: 400 MB of zeros in under 1 KiB
/deflate-bomb       200, Content-Encoding: deflate, deflate: 400 MB of zeros in under 1 KiB
/corrupt-gzip       200, Content-Encoding: gzip on bytes that are not gzip
/endless-chunked    200, chunked, 64 KiB chunks until the caller goes away (or 60 s)
/no-length          200, no Content-Length, Connection: close, 64 MiB then close
/huge-length        200, Content-Length: 10^12, 64 KiB chunks until the caller goes away
/slow-body          200, Content-Length: 1000, one byte a second
/slow-headers       the status line, then one header byte a second
/stalled-body       200, Content-Length: 1000, 10 bytes, then nothing (60 s)
/truncated          200, Content-Length: 1000, 10 bytes, then the connection closes
/reset-body         200, Content-Length: 1000, 10 bytes, then a TCP reset
/endless-headers    the status line, then header lines until the caller goes away
/not-http           a banner that is not HTTP, then close
/not-json           200, Content-Type: application/json, a body that is not JSON (nor UTF-8)
/redirect-metadata  302 to the cloud metadata address 169.254.169.254
/redirect-loopback  302 to 127.0.0.1:ELSEWHERE_PORT (another origin on loopback)
/redirect-loop      302 to itself
/hits               the requests seen so far (JSON)
"""
NOT_JSON = b"<html><body>500 Internal Server Error \xff\xfe</body></html>"


def handler_for(upstream: Upstream):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = urlsplit(self.path).path
            port = self.server.server_address[1]
            if path == "/hits":
                with upstream.lock:
                    self._send(
                        200,
                        {"Content-Type": "application/json"},
                        json.dumps(upstream.hits).encode(),
                    )
                return
            hit = upstream.record(port, path)
            # The gateway gives up reading: what the hostile answers expect.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                self._answer(path, hit)
            self.close_connection = True

        do_POST = do_GET

        def _send(self, status: int, headers: dict, body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _write(self, hit: dict, data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()
            hit["sent"] += len(data)

        def _answer(self, path: str, hit: dict) -> None:
            if path == "/echo":
                self._send(
                    200,
                    {"Content-Type": "application/json"},
                    json.dumps({"path": self.path}).encode(),
                )
            elif path in upstream.bombs:
                header, payload = upstream.bombs[path]
                self._send(
                    200, {"Content-Type": "application/json", "Content-Encoding": header}, payload
                )
                hit["sent"] = len(payload)
            elif path == "/corrupt-gzip":
                self._send(200, {"Content-Encoding": "gzip"}, b"this is not gzip" * 64)
            elif path in ("/endless-chunked", "/huge-length"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if path == "/endless-chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(10**12))
                self.end_headers()
                block = b"x" * CHUNK
                if path == "/endless-chunked":
                    block = b"%x\r\n%s\r\n" % (len(block), block)
                deadline = time.monotonic() + ENDLESS_FOR_S
                while time.monotonic() < deadline:
                    self._write(hit, block)
            elif path == "/no-length":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                block = b"y" * CHUNK
                for _ in range(1024):  # 64 MiB
                    self._write(hit, block)
            elif path in ("/slow-body", "/stalled-body", "/truncated", "/reset-body"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                if path == "/slow-body":
                    for _ in range(1000):
                        self._write(hit, b"z")
                        time.sleep(1)
                else:
                    self._write(hit, b"0123456789")
                    if path == "/stalled-body":
                        time.sleep(ENDLESS_FOR_S)
                    elif path == "/reset-body":  # linger 0: close sends RST, not FIN
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        time.sleep(0.2)  # let the 10 bytes be read first
                        self.rfile.close()  # its reference would keep the socket open
                        self.connection.close()
            elif path == "/slow-headers":
                self._write(hit, b"HTTP/1.1 200 OK\r\n")
                for byte in b"X-Slow: " + b"s" * 1000:
                    self._write(hit, bytes([byte]))
                    time.sleep(1)
            elif path == "/endless-headers":
                self._write(hit, b"HTTP/1.1 200 OK\r\n")
                deadline = time.monotonic() + ENDLESS_FOR_S
                line = b"X-More: " + b"h" * 1000 + b"\r\n"
                while time.monotonic() < deadline:
                    self._write(hit, line * 64)
            elif path == "/not-http":
                self._write(hit, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            elif path == "/not-json":
                self._send(200, {"Content-Type": "application/json"}, NOT_JSON)
            elif path == "/redirect-metadata":
                self._send(302, {"Location": METADATA_URL}, b"")
            elif path == "/redirect-loopback":
                self._send(302, {"Location": f"http://127.0.0.1:{ELSEWHERE_PORT}/secret"}, b"")
            elif path == "/redirect-loop":
                self._send(302, {"Location": "/redirect-loop"}, b"")
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"no such path")

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def serve() -> int:
    upstream = Upstream()
    handler = handler_for(upstream)
    servers = [
        QuietServer(("127.0.0.1", port), handler) for port in (UPSTREAM_PORT, ELSEWHERE_PORT)
    ]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("serving", flush=True)
    servers[0].serve_forever()
    return 0


# --- inside the namespace: lo up, the servers, the client ----------------------------------

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def bring_lo_up() -> None:
    """``ip link set lo up`` without iproute2: a fresh namespace's lo is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout_s: float = 60.0,
) -> dict:
    """One request; the answer (status, headers, the first 64 KiB of the body, its length)
    and the wall time it took. Never decodes a Content-Encoding."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        content = b""
        while len(content) <= CHUNK:
            part = response.read(CHUNK)
            if not part:
                break
            content += part
        return {
            "status": response.status,
            "headers": {k.lower(): v for k, v in response.getheaders()},
            "body_b64": base64.b64encode(content[:CHUNK]).decode(),
            "body_bytes": len(content),
            "seconds": time.monotonic() - started,
        }
    except OSError as exc:
        return {"status": None, "error": repr(exc), "seconds": time.monotonic() - started}
    finally:
        connection.close()


def try_connect(host: str, port: int) -> str:
    """The errno name a TCP connect to host:port ends with, or "connected"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect((host, port))
    except TimeoutError:
        return "timeout"
    except OSError as exc:  # EAFNOSUPPORT where the kernel has no IPv6
        return errno.errorcode.get(exc.errno, str(exc))
    return "connected"


def network_facts() -> dict:
    links = [name for _, name in socket.if_nameindex()]
    try:
        ip_link = subprocess.run(
            ["ip", "-o", "link"], capture_output=True, text=True, timeout=10
        ).stdout
    except OSError:
        ip_link = None  # no iproute2: if_nameindex says the same
    return {
        "links": links,
        "ip_link": ip_link,
        "connect": {
            f"{host}:{port}": try_connect(host, port)
            for host, port in (
                ("1.1.1.1", 443),
                ("8.8.8.8", 53),
                ("169.254.169.254", 80),
                ("2606:4700:4700::1111", 443),
            )
        },
    }


def run_op(op: dict, key: str) -> dict:
    kind = op["op"]
    if kind == "call":
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        return http_call(GATEWAY_PORT, "POST", f"/tools/{op['tool']}", b"{}", auth)
    if kind == "burst":
        with ThreadPoolExecutor(op["n"]) as pool:
            return {
                "answers": list(
                    pool.map(
                        lambda _: run_op({"op": "call", "tool": op["tool"]}, key), range(op["n"])
                    )
                )
            }
    if kind == "get":
        return http_call(op["port"], "GET", op["path"])
    if kind == "net":
        return network_facts()
    raise ValueError(f"unknown op {kind!r}")


def wait_http(port: int, path: str, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        if http_call(port, "GET", path, timeout_s=5)["status"] == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered 127.0.0.1:{port}{path} within {timeout_s} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def inside(gateway: str, tools: str, log: str) -> int:
    bring_lo_up()
    key = os.environ["TOOLS_GATEWAY_KEY"]
    here = str(Path(__file__).resolve().parents[2])
    processes = []
    with open(log, "ab") as log_file:
        try:
            upstream = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.hostile_upstream", "serve"],
                cwd=here,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
            processes.append(upstream)
            gateway_process = subprocess.Popen(
                [
                    gateway,
                    "serve-tools",
                    "--tools",
                    tools,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(GATEWAY_PORT),
                    "--log-level",
                    "warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
            processes.append(gateway_process)
            wait_http(UPSTREAM_PORT, "/hits", 120, upstream)  # the bombs take a while
            wait_http(GATEWAY_PORT, "/health", 120, gateway_process)
            print(
                json.dumps(
                    {
                        "ready": True,
                        "gateway_pid": gateway_process.pid,
                        "upstream_pid": upstream.pid,
                    }
                ),
                flush=True,
            )
            for line in sys.stdin:
                try:
                    answer = run_op(json.loads(line), key)
                except Exception as exc:  # the test reports it; keep serving
                    answer = {"error": repr(exc)}
                print(json.dumps(answer), flush=True)
        except Exception as exc:
            print(json.dumps({"ready": False, "error": repr(exc)}), flush=True)
            return 1
        finally:
            for process in reversed(processes):
                stop(process)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return serve()
    if argv[:1] == ["inside"] and len(argv) == 7:
        options = dict(zip(argv[1::2], argv[2::2], strict=True))
        return inside(options["--gateway"], options["--tools"], options["--log"])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
