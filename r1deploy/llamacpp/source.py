"""The pinned llama.cpp source: the llama-cpp-python source archive from PyPI (or a copy
given by path or URL, for mirrors and air-gapped hosts), checked against its sha256 and
kept in the cache's downloads/."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from r1deploy.llamacpp.pins import Pins, cache_root


class SourceError(RuntimeError):
    """The archive could not be had or is not the pinned one: what, and the fix."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, dest: Path) -> None:
    partial = dest.with_name(dest.name + ".partial")
    try:
        # urllib honours https_proxy and the system trust store (SSL_CERT_FILE).
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SourceError(
            f"cannot download {url}: {exc}\n    fix: check the network or "
            "proxy, or give the archive with --sdist FILE"
        ) from exc
    os.replace(partial, dest)


def fetch_archive(pins: Pins, sdist: str | None = None) -> Path:
    """The verified archive: ``sdist`` (a path or an http(s) URL) or the pinned URL, cached
    under downloads/ once its sha256 matches the pin."""
    downloads = cache_root() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    cached = downloads / pins.file
    if cached.is_file() and sha256_of(cached) == pins.sha256:
        return cached
    if sdist and not sdist.startswith(("http://", "https://")):
        candidate = Path(sdist)
        if not candidate.is_file():
            raise SourceError(f"--sdist {sdist}: no such file")
    else:
        candidate = cached
        _download(sdist or pins.url, cached)
    found = sha256_of(candidate)
    if found != pins.sha256:
        if candidate == cached:
            cached.unlink()
        raise SourceError(
            f"{candidate} has sha256 {found}, not the pinned {pins.sha256} of {pins.file}\n"
            "    fix: give the archive of llama-cpp-python " + pins.version + " from PyPI "
            "(r1deploy/llamacpp/pins.json), or bump the pin deliberately"
        )
    if candidate != cached:
        shutil.copyfile(candidate, cached)
    return cached


def unpack(archive: Path, pins: Pins, into: Path) -> Path:
    """Unpack the archive under ``into``; returns the llama.cpp source directory."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")  # no links or paths outside ``into``
    roots = [p for p in into.iterdir() if p.is_dir()]
    if len(roots) != 1 or not (roots[0] / pins.llama_cpp_dir / "CMakeLists.txt").is_file():
        raise SourceError(f"{archive} does not hold {pins.llama_cpp_dir}/CMakeLists.txt")
    return roots[0] / pins.llama_cpp_dir


def temporary_tree(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".build-", dir=parent))
