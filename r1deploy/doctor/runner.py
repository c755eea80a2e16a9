"""The one way the doctor's host checks read this machine: run a command, read a file, list a
directory. ``LocalHost`` does it for real; tests give ``DoctorContext.host`` a recorded
stand-in (tests/support/recorded_host.py) that answers from fixtures.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Exit statuses as a shell gives them: the program is not installed, or it ran too long.
NOT_FOUND, TIMED_OUT = 127, 124
# Files the host checks read are small (/proc entries, a CDI spec): more is not read.
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CommandResult:
    """What a command gave: its exit status, its stdout and its stderr."""

    argv: tuple[str, ...]
    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def missing(self) -> bool:
        """The program is not installed here."""
        return self.rc == NOT_FOUND

    @property
    def output(self) -> str:
        """stdout and stderr together (nvidia-smi prints its errors on stdout)."""
        return "\n".join(part for part in (self.stdout.strip(), self.stderr.strip()) if part)

    @property
    def first_line(self) -> str:
        for line in self.output.splitlines():
            if line.strip():
                return line.strip()
        return f"exit status {self.rc}, no output"


class Host(Protocol):
    def run(self, argv: list[str], timeout_s: float) -> CommandResult: ...

    def read_text(self, path: str | Path) -> str | None: ...

    def list_dir(self, path: str | Path) -> list[str] | None: ...


class LocalHost:
    """This machine: commands run without a shell, files read as text."""

    def run(self, argv: list[str], timeout_s: float) -> CommandResult:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, errors="replace", timeout=timeout_s
            )
        except FileNotFoundError:
            return CommandResult(tuple(argv), NOT_FOUND, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return CommandResult(tuple(argv), TIMED_OUT, "", f"no answer in {timeout_s:.0f} s")
        except OSError as exc:
            return CommandResult(tuple(argv), 126, "", f"{argv[0]}: {exc}")
        return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)

    def read_text(self, path: str | Path) -> str | None:
        try:
            with open(path, "rb") as handle:
                return handle.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")
        except OSError:
            return None

    def list_dir(self, path: str | Path) -> list[str] | None:
        try:
            return sorted(p.name for p in Path(path).iterdir())
        except OSError:
            return None
