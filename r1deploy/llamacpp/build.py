"""Build llama-server and llama-quantize from the pinned source, once per version and CPU
variant: ``PREFIX/bin/`` holds the two programs, ``PREFIX/convert/`` llama.cpp's HF-to-GGUF
converter from the same source, and ``PREFIX/.r1deploy-complete`` the spec they were built
to. A prefix whose marker matches is reused as it is; anything else is rebuilt.

Only what the stack runs is compiled: the two targets, the CPU backend, no tests, examples,
web UI (its prebuilt download would need the network) or HTTPS client (r1deploy fetches
and verifies the model itself). Static libraries, so the programs need nothing from the
build tree. A cold build is about 11 CPU-minutes; with 2 cores, 6-13 minutes of wall clock.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from r1deploy.llamacpp import source
from r1deploy.llamacpp.cpu import Variant, host_variant
from r1deploy.llamacpp.pins import Pins, cache_root, load

MARKER = ".r1deploy-complete"
# llama.cpp's converter and what it reads at run time, copied out of the source tree.
CONVERTER_PATHS = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "models/templates", "LICENSE")
COMMON_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",  # the variant names the instruction sets (r1deploy.llamacpp.cpu)
    "-DGGML_CCACHE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # ON fetches the web UI from the network at configure
    "-DLLAMA_OPENSSL=OFF",
)


class BuildError(RuntimeError):
    """The build failed: which step, where its log is, and the fix."""


@dataclass(frozen=True)
class Built:
    prefix: str
    llama_server: str
    llama_quantize: str
    converter: str
    variant: str
    build_info: str
    reused: bool
    seconds: float
    # The cache prefix this one was copied from instead of compiled ("" when not).
    copied_from: str = ""


def default_prefix(pins: Pins, variant: Variant) -> Path:
    return cache_root() / f"llama.cpp-{pins.build_tag}-{variant.name}"


def cmake_options(pins: Pins, variant: Variant) -> list[str]:
    # The build number and commit llama-server reports (/props build_info, system_fingerprint)
    # come from git, which an unpacked archive has not: give the pinned ones.
    return [
        *COMMON_OPTIONS,
        *variant.cmake_options,
        f"-DLLAMA_BUILD_NUMBER={pins.build}",
        f"-DLLAMA_BUILD_COMMIT={pins.commit[:7]}",
    ]


def spec_of(pins: Pins, variant: Variant) -> dict:
    """What a prefix was built to: a change of any of it means another build."""
    return {
        "source": pins.file,
        "sha256": pins.sha256,
        "build": pins.build,
        "commit": pins.commit,
        "variant": variant.name,
        "targets": list(pins.targets),
        "cmake": cmake_options(pins, variant),
    }


def _complete(prefix: Path, spec: dict, targets: tuple[str, ...]) -> bool:
    try:
        recorded = json.loads((prefix / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == spec and all(os.access(prefix / "bin" / t, os.X_OK) for t in targets)


class Progress:
    """One line that says how far the build is: rewritten in place on a terminal, a new line
    every 10 % (and at least every minute) in a log."""

    STEP = re.compile(r"^\[\s*(\d+)%\]")

    def __init__(self, what: str, stream=None):
        self.what, self.stream = what, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.shown, self.shown_at = -10, 0.0

    def line(self, text: str) -> None:
        match = self.STEP.match(text)
        if match:
            self.show(int(match.group(1)))

    def show(self, percent: int, done: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        if not (done or self.tty or percent >= self.shown + 10 or elapsed - self.shown_at >= 60):
            return
        self.shown, self.shown_at = percent, elapsed
        message = (
            f"[llamacpp] building {self.what}: {percent:3d}% "
            f"({int(elapsed) // 60}m{int(elapsed) % 60:02d}s)"
        )
        if self.tty:
            print("\r" + message, end="\n" if done else "", file=self.stream, flush=True)
        else:
            print(message, file=self.stream, flush=True)


def _run(
    argv: list[str], log, on_line: Callable[[str], None] | None = None, cwd: Path | None = None
) -> None:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    process = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    for text in process.stdout:
        log.write(text)
        log.flush()  # a build that hangs or dies leaves its log readable
        if on_line:
            on_line(text)
    if process.wait() != 0:
        raise BuildError(f"{argv[0]} {argv[1]} failed (exit {process.returncode})")


def _install(tree: Path, build_dir: Path, staging: Path, targets: tuple[str, ...]) -> None:
    (staging / "bin").mkdir(parents=True)
    for target in targets:
        shutil.copy2(build_dir / "bin" / target, staging / "bin" / target)
    for rel in CONVERTER_PATHS:
        src, dest = tree / rel, staging / "convert" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy2(src, dest)


def is_complete(prefix: Path, pins: Pins | None = None, variant: Variant | None = None) -> bool:
    """Whether ``prefix`` holds a finished build of the pin for this host's variant."""
    pins = pins or load()
    return _complete(Path(prefix), spec_of(pins, variant or host_variant()), pins.targets)


def _copy_into(prefix: Path, cached: Path, spec: dict, targets: tuple[str, ...]) -> bool:
    """Copy the cache's finished build of the same spec to ``prefix`` (the native runtime's
    own, under the stack directory): seconds instead of a compile. False when the cache has
    none (or it changed while being copied)."""
    if not _complete(cached, spec, targets):
        return False
    work = source.temporary_tree(prefix.parent)
    try:
        staging = work / "prefix"
        # The cache's builder holds this lock while it swaps a new build in.
        with open(cached.parent / f".{cached.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            shutil.copytree(cached, staging, symlinks=True)
        if not _complete(staging, spec, targets):
            return False
        if prefix.exists():
            shutil.rmtree(prefix)
        os.replace(staging, prefix)
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(
    prefix: Path | None = None,
    *,
    sdist: str | None = None,
    jobs: int | None = None,
    pins: Pins | None = None,
    variant: Variant | None = None,
    stream=None,
    from_cache: bool = True,
) -> Built:
    """Build (or reuse) llama-server and llama-quantize under ``prefix`` (default: the cache,
    by version and variant). Concurrent callers wait for one another on a lock. Another
    prefix is copied from the cache when the cache holds the same build (``from_cache``)."""
    pins = pins or load()
    variant = variant or host_variant()
    cached = default_prefix(pins, variant).absolute()
    prefix = Path(prefix or cached).absolute()
    spec = spec_of(pins, variant)
    started = time.monotonic()
    copied_from = ""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f".{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reused = _complete(prefix, spec, pins.targets)
        copy = not reused and from_cache and prefix != cached
        if copy and _copy_into(prefix, cached, spec, pins.targets):
            copied_from = str(cached)
        if not reused and not copied_from:
            _build_into(prefix, spec, pins, variant, sdist, jobs, stream)
    return Built(
        prefix=str(prefix),
        llama_server=str(prefix / "bin" / "llama-server"),
        llama_quantize=str(prefix / "bin" / "llama-quantize"),
        converter=str(prefix / "convert"),
        variant=variant.name,
        build_info=pins.build_info,
        reused=reused,
        seconds=round(time.monotonic() - started, 1),
        copied_from=copied_from,
    )


def _build_into(
    prefix: Path,
    spec: dict,
    pins: Pins,
    variant: Variant,
    sdist: str | None,
    jobs: int | None,
    stream,
) -> None:
    archive = source.fetch_archive(pins, sdist)
    work = source.temporary_tree(prefix.parent)
    log_path = prefix.parent / f"{prefix.name}.build.log"
    progress = Progress(f"llama.cpp {pins.build_tag} ({variant.name})", stream)
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            tree = source.unpack(archive, pins, work / "src")
            build_dir = work / "build"
            progress.show(0)
            try:
                _run(
                    ["cmake", "-S", str(tree), "-B", str(build_dir), *cmake_options(pins, variant)],
                    log,
                )
                _run(
                    [
                        "cmake",
                        "--build",
                        str(build_dir),
                        "--parallel",
                        str(jobs or os.cpu_count() or 2),
                        "--target",
                        *pins.targets,
                    ],
                    log,
                    progress.line,
                )
            except FileNotFoundError as exc:
                raise BuildError(
                    "cmake is not installed\n    fix: apt-get install cmake g++ "
                    "(Debian), then run again"
                ) from exc
            except BuildError as exc:
                raise BuildError(
                    f"{exc}; the log is {log_path}\n    fix: read its end; a "
                    "missing compiler is apt-get install g++"
                ) from exc
            staging = work / "prefix"
            _install(tree, build_dir, staging, pins.targets)
            (staging / MARKER).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        progress.show(100, done=True)
        # Swap the finished prefix in: an interrupted build never leaves a half prefix.
        if prefix.exists():
            shutil.rmtree(prefix)
        os.replace(staging, prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def as_dict(built: Built) -> dict:
    return asdict(built)
