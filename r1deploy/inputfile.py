"""Read a file that a validator or the gateway was handed, refusing what is not a small
regular UTF-8 text file.

Without these checks a FIFO blocks the reader forever, /dev/zero is read until
MemoryError and a Latin-1 file ends in a traceback. Only regular files are read, and at
most MAX_INPUT_BYTES of them: the one size cap for tools files, compose files and key
files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from r1deploy.diagnostics import Diagnostic
from r1deploy.rules import INPUT

# tools.json and a rendered compose.yaml are a few KiB; 1 MiB leaves room for large
# hand-written files and keeps every validator well under a second.
MAX_INPUT_BYTES = 1024 * 1024

NOT_A_FILE = INPUT["input-not-a-file"]
TOO_LARGE = INPUT["input-too-large"]
NOT_UTF8 = INPUT["input-encoding"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class InputRefused(Exception):
    """The file was not read, or not as text: a finding, with where and the fix."""

    def __init__(self, rule: str, message: str, fix: str, line=None, column=None):
        super().__init__(message)
        self.rule, self.message, self.fix = rule, message, fix
        self.line, self.column = line, column

    def diagnostic(self, path: str) -> Diagnostic:
        where = (self.line, self.column)
        return Diagnostic(path, "", self.rule, self.message, self.fix, "error", *where)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bytes(path: str | Path) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file of at most MAX_INPUT_BYTES, and its stat.

    Raises InputRefused for anything else and OSError when the path cannot be opened.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRefused(
                NOT_A_FILE.id,
                f"{_kind(info.st_mode)}, not a regular file: not read",
                "pass the path of a regular file",
            )
        data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputRefused(
            TOO_LARGE.id,
            f"larger than {MAX_INPUT_BYTES} bytes (MAX_INPUT_BYTES, r1deploy/inputfile.py): "
            "not read",
            "split the file, or check that this is the file you meant",
        )
    return data, info


def decode_utf8(data: bytes) -> str:
    """``data`` as UTF-8 text; InputRefused at the line and column of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
        raise InputRefused(
            NOT_UTF8.id,
            f"not UTF-8: byte 0x{data[exc.start]:02x} ({exc.reason})",
            "save the file as UTF-8",
            data.count(b"\n", 0, exc.start) + 1,
            column,
        ) from None


def read_text(path: str | Path) -> str:
    """The text of a regular UTF-8 file of at most MAX_INPUT_BYTES (see read_bytes)."""
    data, _ = read_bytes(path)
    return decode_utf8(data)
