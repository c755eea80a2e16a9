"""A stand-in for this machine that the doctor's host checks read through
(``DoctorContext.host``, r1deploy/doctor/runner.py): recorded command outputs, files and
directory listings, so a test says what the host shows without the host having it.

``RecordedHost(commands={"nvidia-smi": Reply(0, "0, NVIDIA H100 ...")}, files={path: text},
dirs={path: [names]})``. A command is answered by the longest recorded key that its words
(joined by spaces) equal or start with: ``"docker ps"`` answers every ``docker ps ...``. A
command not recorded answers like one that is not installed (exit status 127); a file not
recorded reads as missing (None), a directory as absent. Every command run is kept in ``ran``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from r1deploy.doctor.runner import NOT_FOUND, CommandResult

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "doctor"


def fixture(name: str) -> str:
    """A recorded output under tests/unit/fixtures/doctor/."""
    return (FIXTURES / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Reply:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


class RecordedHost:
    def __init__(
        self,
        commands: dict[str, Reply | str] | None = None,
        files: dict[str, str] | None = None,
        dirs: dict[str, list[str]] | None = None,
    ):
        self.commands = dict(commands or {})
        self.files = {str(k): v for k, v in (files or {}).items()}
        self.dirs = {str(k): list(v) for k, v in (dirs or {}).items()}
        self.ran: list[tuple[str, ...]] = []

    def run(self, argv: list[str], timeout_s: float) -> CommandResult:
        self.ran.append(tuple(argv))
        line = " ".join(argv)
        keys = [k for k in self.commands if line == k or line.startswith(k + " ")]
        if not keys:
            return CommandResult(tuple(argv), NOT_FOUND, "", f"{argv[0]}: command not found")
        reply = self.commands[max(keys, key=len)]
        if isinstance(reply, str):
            reply = Reply(0, reply)
        return CommandResult(tuple(argv), reply.rc, reply.stdout, reply.stderr)

    def read_text(self, path: str | Path) -> str | None:
        return self.files.get(str(path))

    def list_dir(self, path: str | Path) -> list[str] | None:
        return self.dirs.get(str(path))
