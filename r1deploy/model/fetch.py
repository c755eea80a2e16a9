"""Fetch a model repo from the Hugging Face hub (or a hub-compatible mirror) into a directory,
as a step of its own (docs/model-fetch.md):

1. read the repo's file list with sizes and checksums (``HfApi.model_info(files_metadata=True)``),
   one request with a timeout: a wrong id, revision, token or endpoint stops here in seconds;
2. check the bytes still to download against the free disk at the destination, with a margin;
3. check the files already there (their hash against the hub's: a bad one is removed);
4. download the rest with ``huggingface_hub.snapshot_download(local_dir=...)``: files already
   complete are skipped, a connection cut mid-file is resumed with a Range request;
5. check every downloaded file against the hub's checksum: the sha256 of an LFS file, the git
   blob sha1 of a small one. A file that does not match is named and removed.

huggingface_hub is imported only here, when a fetch runs (the CLI imports this module lazily).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 10.0  # seconds, each request (huggingface_hub's own default)
MARGIN_MIN = 256 * 1024**2  # free disk kept beyond the download: this much at least...
MARGIN_SHARE = 0.10  # ...or this share of the download
HF_DIR = Path(".cache") / "huggingface"  # huggingface_hub's bookkeeping in a local_dir
LOCK_FILE = Path(".cache") / "r1deploy-model-fetch.lock"
PROGRESS_EVERY = 10.0  # seconds between two lines of totals

# Where each setting comes from, in the deploy and on this command line.
TOKEN_WHERE = "r1_stack_hf_token in the deploy; here --token-file FILE or HF_TOKEN"
ENDPOINT_WHERE = "HF_ENDPOINT (r1_stack_hf_endpoint in the deploy; here --endpoint)"
REPO_WHERE = "r1_stack_model_id in the deploy (here --repo)"


class FetchError(Exception):
    """A fetch that stopped: what happened (``cause``), what to do (``fix``), the exit code."""

    def __init__(self, cause: str, fix: str, code: int = 2) -> None:
        super().__init__(cause)
        self.cause, self.fix, self.code = cause, fix, code

    def __str__(self) -> str:
        return f"{self.cause}\n  fix: {self.fix}"

    def to_dict(self) -> dict:
        return {"cause": self.cause, "fix": self.fix}


@dataclass(frozen=True)
class HubFile:
    """One file of the repo as the hub lists it."""

    path: str
    size: int
    sha256: str | None = None  # LFS files: the sha256 of the content
    blob_id: str | None = None  # the git blob sha1 (of the LFS pointer for an LFS file)

    @property
    def algorithm(self) -> str:
        if self.sha256:
            return "sha256"
        return "git-sha1" if self.blob_id else "size"

    @property
    def expected(self) -> str:
        return self.sha256 or self.blob_id or str(self.size)


@dataclass
class Source:
    repo: str
    revision: str = "main"
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    token_from: str | None = None  # where the token came from, for messages (never the token)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or self.endpoint

    @property
    def model_page(self) -> str:
        return f"{self.endpoint}/{self.repo}"


@dataclass
class Plan:
    source: Source
    dest: Path
    commit: str
    files: list[HubFile]
    present: set[str]  # files already in dest with the hub's size (checked by hash before use)
    free_bytes: int
    disk_at: Path  # where free_bytes was measured: dest or its nearest existing parent
    stale_bytes: int = 0  # partial downloads left by a killed run (removed before downloading)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files if f.path not in self.present)

    @property
    def margin_bytes(self) -> int:
        need = self.download_bytes
        return max(MARGIN_MIN, int(need * MARGIN_SHARE)) if need else 0

    @property
    def required_bytes(self) -> int:
        return self.download_bytes + self.margin_bytes

    @property
    def fits(self) -> bool:
        return self.free_bytes + self.stale_bytes >= self.required_bytes


@dataclass
class FileResult:
    file: HubFile
    status: str  # kept | downloaded | corrupt | missing | planned
    actual: str | None = None

    def to_dict(self) -> dict:
        return {
            "path": self.file.path,
            "size": self.file.size,
            "algorithm": self.file.algorithm,
            "expected": self.file.expected,
            "status": self.status,
            **({"actual": self.actual} if self.actual and self.status == "corrupt" else {}),
        }


@dataclass
class Result:
    plan: Plan
    check_only: bool
    results: list[FileResult] = field(default_factory=list)
    downloaded_bytes: int = 0
    seconds: float = 0.0

    @property
    def bad(self) -> list[FileResult]:
        return [r for r in self.results if r.status in ("corrupt", "missing")]

    def to_dict(self) -> dict:
        plan = self.plan
        return {
            "ok": plan.fits and not self.bad,
            "check": self.check_only,
            "repo": plan.source.repo,
            "revision": plan.source.revision,
            "commit": plan.commit,
            "endpoint": plan.source.endpoint,
            "dest": str(plan.dest),
            "total_bytes": plan.total_bytes,
            "download_bytes": plan.download_bytes,
            "required_bytes": plan.required_bytes,
            "free_bytes": plan.free_bytes,
            "disk_at": str(plan.disk_at),
            "stale_bytes": plan.stale_bytes,
            "downloaded_bytes": self.downloaded_bytes,
            "seconds": round(self.seconds, 2),
            "files": [r.to_dict() for r in self.results],
        }


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- settings --------------------------------------------------------------------------


def endpoint_from(flag: str | None) -> str:
    endpoint = (flag or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(
            f"the endpoint {endpoint!r} is not an http(s) URL",
            f"set {ENDPOINT_WHERE} to the hub or a mirror, e.g. {DEFAULT_ENDPOINT}",
        )
    return endpoint


def timeout_from(flag: float | None) -> float:
    raw = flag if flag is not None else os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT")
    try:
        value = float(raw) if raw not in (None, "") else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if value <= 0:
        raise FetchError(
            f"the timeout {raw!r} is not a positive number of seconds",
            "give --timeout SECONDS (or HF_HUB_DOWNLOAD_TIMEOUT) as a number above 0",
        )
    return value


def configure_http(timeout: float) -> None:
    """Every request huggingface_hub makes gets a timeout: its file downloads and HEAD calls
    take theirs from its constants, and the tree listing, which passes none, gets one from a
    request hook on the shared client (an explicit ``timeout=None`` would wait forever)."""
    import httpx2
    from huggingface_hub import constants, set_client_factory

    constants.HF_HUB_DOWNLOAD_TIMEOUT = timeout
    constants.HF_HUB_ETAG_TIMEOUT = timeout
    # No telemetry: with it, huggingface_hub also asks the endpoint for a registry of "agent
    # harnesses" (a request more, 3 s when it hangs) and writes it under HF_HOME.
    constants.HF_HUB_DISABLE_TELEMETRY = True

    def bounded(request: httpx2.Request) -> None:
        limits = dict(request.extensions.get("timeout") or {})
        if not limits or any(v is None for v in limits.values()):
            request.extensions["timeout"] = {
                k: (timeout if limits.get(k) is None else limits[k])
                for k in ("connect", "read", "write", "pool")
            }

    def factory() -> httpx2.Client:
        try:
            from huggingface_hub.utils._http import default_client_factory

            client = default_client_factory()
        except ImportError:  # a later huggingface_hub: its hooks are then not ours to keep
            client = httpx2.Client(follow_redirects=True)
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), bounded]}
        return client

    set_client_factory(factory)


# --- the hub's view --------------------------------------------------------------------


def read_repo(source: Source) -> tuple[str, list[HubFile]]:
    """The commit the revision points at and the repo's files (sizes, checksums): one request."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=source.endpoint, token=source.token or False)
    try:
        info = api.model_info(
            source.repo,
            revision=source.revision,
            files_metadata=True,
            timeout=source.timeout,
            token=source.token or False,
        )
    except Exception as exc:
        raise explain(exc, source) from exc
    files = []
    for sibling in info.siblings or []:
        if sibling.size is None:
            raise FetchError(
                f"{source.endpoint} lists {source.repo} without file sizes (no 'blobs' support)",
                f"use an endpoint that answers like the hub: {ENDPOINT_WHERE}",
            )
        lfs = sibling.lfs
        files.append(
            HubFile(
                path=sibling.rfilename,
                size=int(lfs.size if lfs else sibling.size),
                sha256=(lfs.sha256 if lfs else None),
                blob_id=sibling.blob_id,
            )
        )
    if not files:
        raise FetchError(
            f"{source.repo} at {source.revision} has no files on {source.endpoint}",
            f"check {REPO_WHERE} and --revision",
        )
    return info.sha or source.revision, sorted(files, key=lambda f: f.path)


def existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def stale_partials(dest: Path) -> list[Path]:
    """Partial files of a download that was killed (huggingface_hub removes its own on errors,
    but not when the process is killed): they only take space, nothing resumes from them."""
    root = dest / HF_DIR / "download"
    return sorted(root.rglob("*.incomplete")) if root.is_dir() else []


def make_plan(source: Source, dest: Path, commit: str, files: list[HubFile]) -> Plan:
    present = set()
    for f in files:
        target = dest / f.path
        with contextlib.suppress(OSError):
            if target.is_file() and target.stat().st_size == f.size:
                present.add(f.path)
    disk_at = existing_parent(dest)
    stale = 0
    for partial in stale_partials(dest):
        with contextlib.suppress(OSError):
            stale += partial.stat().st_size
    return Plan(
        source=source,
        dest=dest,
        commit=commit,
        files=files,
        present=present,
        free_bytes=shutil.disk_usage(disk_at).free,
        disk_at=disk_at,
        stale_bytes=stale,
    )


def disk_error(plan: Plan) -> FetchError:
    short = plan.required_bytes - plan.free_bytes - plan.stale_bytes
    return FetchError(
        f"not enough free disk for {plan.source.repo} in {plan.dest}: "
        f"{human(plan.download_bytes)} to download + {human(plan.margin_bytes)} margin = "
        f"{human(plan.required_bytes)} needed, {human(plan.free_bytes)} free at {plan.disk_at}"
        + (f" (+ {human(plan.stale_bytes)} of stale partial files)" if plan.stale_bytes else ""),
        f"free {human(short)} or more on that filesystem (old models, docker images: "
        "docker system prune), or fetch to a larger disk with --dest DIR "
        "(the deploy's model directory); nothing was downloaded",
    )


# --- checksums -------------------------------------------------------------------------


def file_hash(path: Path, algorithm: str, size: int) -> str:
    if algorithm == "size":
        return str(path.stat().st_size)
    digest = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1()
    if algorithm == "git-sha1":
        digest.update(b"blob %d\0" % size)
    with path.open("rb") as stream:
        while chunk := stream.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(dest: Path, f: HubFile) -> tuple[str, str | None]:
    """('ok' | 'corrupt' | 'missing', the hash found)."""
    target = dest / f.path
    if not target.is_file():
        return "missing", None
    actual_size = target.stat().st_size
    if actual_size != f.size:
        return "corrupt", f"size {actual_size}"
    actual = file_hash(target, f.algorithm, f.size)
    return ("ok" if actual == f.expected else "corrupt"), actual


def forget(dest: Path, f: HubFile) -> None:
    """Remove a bad file and huggingface_hub's note that it was downloaded, so that the next
    run downloads it again."""
    for path in (dest / f.path, dest / HF_DIR / "download" / f"{f.path}.metadata"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- progress --------------------------------------------------------------------------


class Progress:
    """Plain lines on a stream, terminal or not (Ansible shows them, a log keeps them): a
    watcher prints one line per finished file and the totals every ``every`` seconds.
    huggingface_hub's own bars are off."""

    def __init__(self, stream: TextIO, every: float = PROGRESS_EVERY):
        self.stream = stream
        self.every = every

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def watch(self, plan: Plan) -> Iterator[None]:
        pending = {f.path: f for f in plan.files if f.path not in plan.present}
        total = sum(f.size for f in pending.values())
        done: dict[str, int] = {}
        started = time.monotonic()
        stop = threading.Event()

        def sweep() -> None:
            for path, f in list(pending.items()):
                target = plan.dest / path
                with contextlib.suppress(OSError):
                    if target.is_file() and target.stat().st_size == f.size:
                        done[path] = f.size
                        del pending[path]
                        self.say(f"  got {path} ({human(f.size)})")

        def partial_bytes() -> int:
            got = 0
            for partial in stale_partials(plan.dest):
                with contextlib.suppress(OSError):
                    got += partial.stat().st_size
            return got

        def totals() -> None:
            got = min(sum(done.values()) + partial_bytes(), total)
            seconds = time.monotonic() - started
            rate = got / seconds if seconds > 0 else 0
            self.say(
                f"  {100 * got / total if total else 100:.0f}% {human(got)} of {human(total)}, "
                f"{human(rate)}/s, {len(done)} of {len(done) + len(pending)} files"
            )

        def run() -> None:
            last = time.monotonic()
            while not stop.wait(0.5):
                sweep()
                if time.monotonic() - last >= self.every:
                    last = time.monotonic()
                    totals()

        watcher = threading.Thread(target=run, name="model-fetch-progress", daemon=True)
        watcher.start()
        try:
            yield
            stop.set()
            watcher.join()
            sweep()
        finally:
            stop.set()
            watcher.join()


# --- errors ----------------------------------------------------------------------------


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _server_message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("X-Error-Message") or getattr(exc, "server_message", None) or ""


DNS_WORDS = re.compile(
    r"name or service not known|nodename nor servname|temporary failure in name resolution|"
    r"no address associated|getaddrinfo|name resolution|-2\]|-3\]|-5\]",
    re.I,
)


def explain(exc: BaseException, source: Source, dest: Path | None = None) -> FetchError:
    """huggingface_hub's and httpx's exceptions as a cause and a fix, naming the setting."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(exc, FetchError):
        return exc
    repo, endpoint = source.repo, source.endpoint
    status, said = _status(exc), _server_message(exc)
    said_part = f": {said}" if said else ""
    token_help = (
        f"give a valid read token: {TOKEN_WHERE} (create one at {endpoint}/settings/tokens)"
    )
    unreachable_fix = (
        f"check this host's route to {source.host} (DNS, firewall, a proxy in HTTPS_PROXY), "
        f"or set {ENDPOINT_WHERE} to a mirror this host reaches"
    )

    if isinstance(exc, errors.GatedRepoError):
        if source.token and status == 403:
            return FetchError(
                f"{repo} is a gated repo and the token's account may not download it yet "
                f"({status}{said_part})",
                f"accept the licence on the model page {source.model_page} with the account "
                "that owns the token (some repos also wait for the owner's approval), then run "
                "again",
            )
        if source.token:
            return FetchError(
                f"{endpoint} refused the token from {source.token_from} for the gated repo "
                f"{repo} ({status}{said_part})",
                token_help + f", of an account that accepted the licence on {source.model_page}",
            )
        return FetchError(
            f"{repo} is a gated repo: it needs a token and none was given ({status}{said_part})",
            f"accept the licence on the model page {source.model_page}, then {token_help}",
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return FetchError(
            f"{repo} has no revision {source.revision!r} on {endpoint} ({status})",
            f"give a branch, tag or commit of {repo} with --revision (the deploy has no "
            "variable for it yet and fetches main)",
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        if status == 401 and not source.token:
            return FetchError(
                f"{endpoint} has no repo {repo} that can be read without a token ({status})",
                f"check the id in {REPO_WHERE}; if the repo is private or gated, {token_help}",
            )
        return FetchError(
            f"{endpoint} has no repo {repo}, or not one this token may see ({status})",
            f"check the id in {REPO_WHERE} (e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B); "
            f"with a mirror in {ENDPOINT_WHERE}, check that it mirrors that repo",
        )
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return FetchError(
            f"{endpoint} lists a file of {repo} it does not serve ({status}): {exc}",
            f"the mirror in {ENDPOINT_WHERE} is incomplete: complete it or use the hub; "
            "then run again",
        )
    if isinstance(exc, errors.HfHubHTTPError) and status is not None:
        if status == 401:
            return FetchError(
                f"{endpoint} refused the token from {source.token_from or 'nowhere'} "
                f"({status}{said_part})",
                token_help,
            )
        if status == 403:
            return FetchError(
                f"{endpoint} forbids {repo} to this token ({status}{said_part})",
                f"a fine-grained token needs read access to {repo}: {token_help}",
            )
        if status == 429:
            return FetchError(
                f"{endpoint} is rate-limiting this host ({status}{said_part})",
                f"wait a few minutes and run again; a token gets higher limits: {TOKEN_WHERE}",
            )
        if status >= 500:
            return FetchError(
                f"{endpoint} failed to answer ({status}{said_part})",
                "run again later: finished files are kept and only the rest is fetched; or "
                f"set {ENDPOINT_WHERE} to a working mirror",
            )
        return FetchError(
            f"{endpoint} answered {status}{said_part}",
            f"check {REPO_WHERE}, --revision and {ENDPOINT_WHERE}",
        )
    if isinstance(exc, errors.FileMetadataError):
        return FetchError(
            f"{endpoint} does not answer like a Hugging Face hub: {exc}",
            f"{ENDPOINT_WHERE} must be the hub or a hub-compatible mirror (X-Repo-Commit and "
            "ETag headers on /resolve/); check that no proxy rewrites the answers",
        )
    if isinstance(exc, errors.LocalEntryNotFoundError):
        # snapshot_download's wrapper for "the hub could not be reached": the cause says why.
        cause = exc.__cause__ or exc.__context__
        if cause is not None and cause is not exc:
            return explain(cause, source, dest)
        return FetchError(f"{endpoint} could not be reached: {exc}", unreachable_fix)
    if isinstance(exc, httpx2.ProxyError):
        return FetchError(
            f"the proxy refused the way to {source.host}: {exc}",
            "check HTTPS_PROXY / NO_PROXY on this host, or set "
            f"{ENDPOINT_WHERE} to a mirror reached without it",
        )
    if isinstance(exc, httpx2.TimeoutException):
        return FetchError(
            f"no answer from {endpoint} within {source.timeout:g} s ({type(exc).__name__})",
            unreachable_fix + "; on a slow link raise --timeout (HF_HUB_DOWNLOAD_TIMEOUT)",
        )
    if isinstance(exc, httpx2.ConnectError):
        if DNS_WORDS.search(str(exc)):
            return FetchError(
                f"cannot resolve {source.host} (DNS): {exc}",
                f"fix this host's DNS for {source.host}, or set {ENDPOINT_WHERE} to a mirror "
                "this host resolves and reaches",
            )
        return FetchError(f"cannot connect to {endpoint}: {exc}", unreachable_fix)
    if isinstance(exc, (httpx2.NetworkError, httpx2.RemoteProtocolError)):
        return FetchError(
            f"the connection to {endpoint} kept breaking, beyond huggingface_hub's retries: {exc}",
            "run again: finished files are kept and only the rest is fetched",
        )
    if isinstance(exc, (httpx2.UnsupportedProtocol, httpx2.InvalidURL)):
        return FetchError(
            f"the endpoint {endpoint} is not usable: {exc}",
            f"set {ENDPOINT_WHERE} to an http(s) URL of the hub or a mirror",
        )
    if isinstance(exc, OSError):
        where = dest or Path(exc.filename or ".")
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FetchError(
                f"the disk filled up while writing to {where}: {exc.strerror}",
                "free space on that filesystem or fetch to a larger disk with --dest DIR, then "
                "run again (finished files are kept)",
            )
        if "Consistency check failed" in str(exc):
            return FetchError(
                f"a file arrived with the wrong size from {endpoint}: {exc}".split("\n")[0],
                "run again: finished files are kept and only the rest is fetched",
            )
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EROFS):
            return FetchError(
                f"cannot write to {exc.filename or where}: {exc.strerror}",
                "run as the user that owns the directory, or give another --dest DIR",
            )
    raise exc


# --- the whole fetch -------------------------------------------------------------------


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    import fcntl

    path = dest / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FetchError(
                f"another r1deploy model fetch is writing to {dest}",
                "wait for it to finish (or stop it), then run again",
            ) from None
        yield


def fetch(
    source: Source,
    dest: Path,
    *,
    check_only: bool = False,
    progress: Progress,
) -> Result:
    """Raises FetchError (code 2) when it cannot run; a Result with ``bad`` files otherwise."""
    started = time.monotonic()
    configure_http(source.timeout)
    commit, files = read_repo(source)
    plan = make_plan(source, dest, commit, files)
    result = Result(plan=plan, check_only=check_only)
    progress.say(
        f"{source.repo} at {source.revision} (commit {commit[:12]}) from {source.endpoint}: "
        f"{len(files)} files, {human(plan.total_bytes)}; {len(plan.present)} already in "
        f"{dest} by size, {human(plan.download_bytes)} to download; "
        f"{human(plan.free_bytes)} free at {plan.disk_at}, {human(plan.required_bytes)} needed"
    )
    if check_only:
        result.results = [
            FileResult(f, "present" if f.path in plan.present else "planned") for f in files
        ]
        for r in result.results:
            progress.say(f"  {r.status:8} {r.file.path} ({human(r.file.size)})")
        result.seconds = time.monotonic() - started
        if not plan.fits:
            raise disk_error(plan)
        return result
    if not plan.fits:
        raise disk_error(plan)

    try:
        dest.mkdir(parents=True, exist_ok=True)
        with locked(dest):
            for partial in stale_partials(dest):
                partial.unlink(missing_ok=True)
            # Files already there are checked first: a bad one is removed and fetched again now.
            kept: list[HubFile] = []
            for f in files:
                if f.path not in plan.present:
                    continue
                status, actual = check_file(dest, f)
                if status == "ok":
                    kept.append(f)
                    continue
                progress.say(f"  {f.path} was there but its {f.algorithm} does not match: removed")
                forget(dest, f)
            todo = [f for f in files if f not in kept]
            if todo:
                progress.say(
                    f"downloading {len(todo)} files, {human(sum(f.size for f in todo))}, to {dest}"
                )
                download(plan, source, progress)
            result.downloaded_bytes = sum(f.size for f in todo)
            for f in files:
                if f in kept:
                    result.results.append(FileResult(f, "kept"))
                    continue
                status, actual = check_file(dest, f)
                if status == "ok":
                    result.results.append(FileResult(f, "downloaded"))
                    continue
                forget(dest, f)
                result.results.append(FileResult(f, status, actual))
    except FetchError:
        raise
    except Exception as exc:
        raise explain(exc, source, dest) from exc
    for r in result.results:
        if r.status in ("kept", "downloaded"):
            progress.say(f"  ok {r.file.algorithm:8} {r.file.path} ({r.status})")
        elif r.status == "missing":
            progress.say(f"  MISSING {r.file.path}: the download left no file")
        else:
            progress.say(
                f"  BAD {r.file.path}: {r.file.algorithm} is {r.actual}, the hub says "
                f"{r.file.expected}: removed"
            )
    result.seconds = time.monotonic() - started
    return result


def download(plan: Plan, source: Source, progress: Progress) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    with progress.watch(plan):
        snapshot_download(
            repo_id=plan.source.repo,
            revision=plan.commit,
            local_dir=plan.dest,
            endpoint=source.endpoint,
            token=source.token or False,
            etag_timeout=source.timeout,
        )


def bad_files_error(result: Result) -> FetchError:
    names = ", ".join(r.file.path for r in result.bad)
    return FetchError(
        f"{len(result.bad)} file(s) of {result.plan.source.repo} did not match the hub's "
        f"checksum and were removed: {names}",
        "run the same command again to download them again; if they fail again, the endpoint "
        f"({ENDPOINT_WHERE}) or a proxy on the way serves wrong bytes",
        code=1,
    )
