"""A stand-in for the Hugging Face hub: one model repo, served the way huggingface_hub's
``model_info``, ``list_repo_tree`` and ``snapshot_download`` expect, with faults to inject.

It is not the hub. It answers only what those calls ask (read from huggingface_hub's
hf_api.py and file_download.py):

- ``GET /api/models/{repo}/revision/{rev}`` (``?blobs=true``: each sibling's size, git blob id
  and LFS sha256), the commit in ``sha``;
- ``GET /api/models/{repo}/tree/{rev}?recursive=true``: files and folders, LFS ``oid``;
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (the git blob id,
  or for an LFS file its sha256, also in ``X-Linked-Etag`` with ``X-Linked-Size``),
  ``Content-Length``, ``Accept-Ranges`` and ``Range`` (206, ``Content-Range``) for resumes;
- errors as the hub words them: ``X-Error-Code`` RepoNotFound, RevisionNotFound, GatedRepo,
  and 401 ``X-Error-Message: Invalid credentials in Authorization header``.

The repo's files are small fakes made here (a valid safetensors file of random bytes, JSON
configs, a nested file): building the real scripted test model (r1deploy.testmodel) needs
torch, which the unit tier does not have, and fetching checks bytes, not what they mean.

Run alone: ``python -m tests.stubs.hub_standin`` (prints its endpoint, serves until Ctrl-C).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO = "standin-org/Tiny-R1-Distill"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD_TOKEN = "hf_standin_good_token"
LFS_MIN = 64 * 1024  # files this big or bigger are LFS files in the stand-in repo


def tiny_repo_files() -> dict[str, bytes]:
    """The stand-in repo's files: path -> bytes (about 12 MiB in all: the weights are one
    12 MiB file, more than huggingface_hub's 10 MiB download chunk, so that a cut after the
    first chunk is resumed with a Range request rather than started again)."""
    rng = random.Random(18)
    tensor = rng.randbytes(12 * 1024 * 1024 - 512)
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "model.embed_tokens.weight": {
                "dtype": "U8",
                "shape": [len(tensor)],
                "data_offsets": [0, len(tensor)],
            },
        }
    ).encode()
    header += b" " * (-len(header) % 8)
    safetensors = len(header).to_bytes(8, "little") + header + tensor
    vocab = {f"tok{i}": i for i in range(6000)}
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        b"tokenizer.json filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"# Tiny R1 distill (stand-in)\n\nFake weights for r1deploy's tests.\n",
        "config.json": json.dumps(
            {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 6000},
            indent=2,
        ).encode(),
        "generation_config.json": b'{"do_sample": true, "temperature": 0.6, "top_p": 0.95}\n',
        "tokenizer.json": json.dumps({"model": {"type": "BPE", "vocab": vocab}}).encode(),
        "figures/benchmark.txt": b"no figures in the stand-in\n",
        "model.safetensors": safetensors,
    }


def directory_files(root) -> dict[str, bytes]:
    """A model directory's files as a repo of the stand-in: path -> bytes (huggingface_hub's
    bookkeeping under .cache/ left out)."""
    root = Path(root)
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".cache" not in path.relative_to(root).parts
    }


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class RepoEntry:
    path: str
    data: bytes

    @property
    def lfs(self) -> bool:
        return len(self.data) >= LFS_MIN

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {len(self.data)}\n"
        ).encode()

    @property
    def blob_id(self) -> str:
        """The git blob id: of the LFS pointer for an LFS file, as on the hub."""
        return git_blob_id(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Faults:
    """What to break. Counts are used up as requests arrive."""

    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then cut; once
    server_error: dict[str, int] = field(default_factory=dict)  # path -> that many GETs answer 500
    corrupt: set[str] = field(default_factory=set)  # paths served with one byte flipped
    token: str | None = None  # the one token accepted; None: a public repo
    gated_accepted: bool = (
        True  # False: a gated repo whose licence the token's account has not accepted
    )


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


class HubStandin:
    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        faults: Faults | None = None,
        repo: str = REPO,
        host: str = "127.0.0.1",
    ):
        self.repo, self.host = repo, host
        self.entries = {p: RepoEntry(p, d) for p, d in (files or tiny_repo_files()).items()}
        self.faults = faults or Faults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- what the tests read
    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def gets(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + path)]

    def total_bytes(self) -> int:
        return sum(len(e.data) for e in self.entries.values())

    # --- life
    def start(self) -> HubStandin:
        standin = self

        class Handler(_Handler):
            hub = standin

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the hub's answers
    def access(self, repo: str, authorization: str | None) -> tuple[int, dict] | None:
        """None when the request may read the repo, else (status, error headers)."""
        token = (authorization or "").removeprefix("Bearer ").strip() or None
        if token is not None and token != self.faults.token:
            return 401, {"X-Error-Message": "Invalid credentials in Authorization header"}
        if repo != self.repo:
            return (404 if token else 401), {"X-Error-Code": "RepoNotFound"}
        if self.faults.token is None:
            return None
        if token is None:
            return 401, {
                "X-Error-Code": "GatedRepo",
                "X-Error-Message": f"Access to model {repo} is restricted. You must have access "
                "to it and be authenticated to access it. Please log in.",
            }
        if not self.faults.gated_accepted:
            return 403, {
                "X-Error-Code": "GatedRepo",
                "X-Error-Message": f"Access to model {repo} is restricted and you are not in "
                "the authorized list. Visit the model page to ask for access.",
            }
        return None

    def take(self, table: dict[str, int], path: str) -> int | None:
        with self._lock:
            left = table.get(path)
            if not left:
                return None
            table[path] = left - 1
            return left


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, headers: dict | None = None) -> None:
        self._send(
            200, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _error(self, status: int, headers: dict, message: str = "") -> None:
        body = json.dumps({"error": headers.get("X-Error-Message") or message}).encode()
        self._send(status, body, {"Content-Type": "application/json", **headers})

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        hub = self.hub
        with hub._lock:
            hub.requests.append(
                Request(
                    self.command, path, self.headers.get("Range"), self.headers.get("Authorization")
                )
            )
        auth = self.headers.get("Authorization")
        if m := re.fullmatch(r"/api/models/(.+?)/revision/([^/]+)", path):
            return self._model_info(m[1], m[2], parse_qs(url.query), auth)
        if m := re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)(/.*)?", path):
            return self._tree(m[1], m[2], auth)
        if m := re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path):
            return self._resolve(m[1], m[2], m[3], auth)
        self._error(404, {}, f"the stand-in does not answer {path}")

    def _revision(self, revision: str) -> bool:
        if revision in ("main", COMMIT):
            return True
        self._error(404, {"X-Error-Code": "RevisionNotFound"}, f"Invalid rev id: {revision}")
        return False

    def _model_info(self, repo: str, revision: str, query: dict, auth: str | None) -> None:
        if denied := self.hub.access(repo, auth):
            return self._error(*denied)
        if not self._revision(revision):
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for entry in self.hub.entries.values():
            sibling: dict = {"rfilename": entry.path}
            if blobs:
                sibling |= {"size": len(entry.data), "blobId": entry.blob_id}
                if entry.lfs:
                    sibling["lfs"] = {
                        "sha256": entry.sha256,
                        "size": len(entry.data),
                        "pointerSize": len(entry.pointer),
                    }
            siblings.append(sibling)
        self._json(
            {
                "_id": "standin",
                "id": repo,
                "modelId": repo,
                "sha": COMMIT,
                "private": False,
                "gated": "manual" if self.hub.faults.token else False,
                "disabled": False,
                "siblings": siblings,
            }
        )

    def _tree(self, repo: str, revision: str, auth: str | None) -> None:
        if denied := self.hub.access(repo, auth):
            return self._error(*denied)
        if not self._revision(revision):
            return
        listing, folders = [], set()
        for entry in self.hub.entries.values():
            parts = entry.path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folders.add("/".join(parts[:i]))
            item = {
                "type": "file",
                "oid": entry.blob_id,
                "size": len(entry.data),
                "path": entry.path,
            }
            if entry.lfs:
                item["lfs"] = {
                    "oid": entry.sha256,
                    "size": len(entry.data),
                    "pointerSize": len(entry.pointer),
                }
            listing.append(item)
        listing += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in folders]
        self._json(listing)

    def _resolve(self, repo: str, revision: str, filename: str, auth: str | None) -> None:
        hub = self.hub
        if denied := hub.access(repo, auth):
            return self._error(*denied)
        if not self._revision(revision):
            return
        entry = hub.entries.get(filename)
        if entry is None:
            return self._error(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        data = entry.data
        if filename in hub.faults.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.lfs:
            headers |= {"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": len(entry.data)}
        if self.command == "HEAD":
            return self._send(200, data, headers)
        if hub.take(hub.faults.server_error, filename):
            return self._error(500, {}, "stand-in: internal error (injected)")
        status, start = 200, 0
        if (wanted := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d+)-", wanted)):
            start = int(m[1])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        with hub._lock:
            cut_at = hub.faults.cut_after.pop(filename, None)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut_at is not None and cut_at < len(body):
            self.wfile.write(body[:cut_at])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


def main() -> None:
    with HubStandin() as hub:
        print(f"hub stand-in for {REPO} at {hub.endpoint} (HF_ENDPOINT={hub.endpoint})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
