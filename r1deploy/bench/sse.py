"""Incremental Server-Sent Events parsing for OpenAI-style streams.

Bytes arrive in arbitrary pieces (a network read can end mid-line or mid-UTF-8 character), so
the parser buffers until an event's blank-line terminator, then yields the event's ``data``
payload. Comment lines (``: ping``) and fields other than ``data`` are skipped, as the SSE
specification says; several ``data:`` lines in one event are joined with newlines.
"""

from __future__ import annotations

import codecs

DONE = "[DONE]"


class SSEParser:
    """Feed bytes with :meth:`feed`; get back the complete events' data payloads."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._data_lines: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += self._decoder.decode(chunk)
        events: list[str] = []
        while True:
            newline = self._buffer.find("\n")
            if newline < 0:
                break
            line = self._buffer[:newline].rstrip("\r")
            self._buffer = self._buffer[newline + 1 :]
            self._take_line(line, events)
        return events

    def close(self) -> list[str]:
        """End of stream: a last event without its blank line still counts."""
        events: list[str] = []
        tail = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        if tail:
            self._take_line(tail.rstrip("\r"), events)
        self._take_line("", events)
        return events

    def _take_line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data_lines:
                events.append("\n".join(self._data_lines))
                self._data_lines = []
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if field == "data":
            self._data_lines.append(value[1:] if value.startswith(" ") else value)
