"""Undo an upstream answer's Content-Encoding without ever holding more than the cap.

httpx decodes each chunk whole before the caller sees it, so a 790-byte gzip-of-gzip
answer became 400 MB in the gateway's memory before max_response_bytes was checked.
The gateway asks for identity, reads the raw bytes, and decodes here: zlib, at most
STEP bytes per call and layer, counting what comes out, so it stops at the cap.
"""

from __future__ import annotations

import zlib

STEP = 64 * 1024
# One layer is what servers send; "gzip, gzip" is seen only from attackers, so more than
# two is refused rather than given a zlib state each.
MAX_LAYERS = 2
_WBITS = {
    "gzip": zlib.MAX_WBITS | 16,
    "x-gzip": zlib.MAX_WBITS | 16,
    "deflate": zlib.MAX_WBITS | 32,  # zlib-wrapped, or gzip mislabelled (auto-detected)
}


class TooLarge(Exception):
    """The decoded answer exceeds the cap."""


class BadEncoding(Exception):
    """A coding the gateway does not decode, too many layers, or corrupt data."""


def codings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding header, in the order they were applied."""
    named = [c.strip().lower() for c in (header or "").split(",")]
    return [c for c in named if c and c != "identity"]


class BoundedDecoder:
    """Decodes a body chunk by chunk; ``feed`` raises TooLarge once it passes ``cap``."""

    def __init__(self, header: str | None, cap: int):
        layers = codings(header)
        unknown = [c for c in layers if c not in _WBITS]
        if unknown:
            raise BadEncoding(f"Content-Encoding {', '.join(unknown)} is not decoded here")
        if len(layers) > MAX_LAYERS:
            raise BadEncoding(f"Content-Encoding has {len(layers)} layers (at most {MAX_LAYERS})")
        # The last coding applied is undone first.
        self._layers = [zlib.decompressobj(_WBITS[c]) for c in reversed(layers)]
        self._room = cap
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        try:
            self._push(0, data)
        except zlib.error as exc:
            raise BadEncoding(f"the body does not decode: {exc}") from None

    def content(self) -> bytes:
        return b"".join(self._parts)

    def _push(self, index: int, data: bytes) -> None:
        if index == len(self._layers):
            self._room -= len(data)
            if self._room < 0:
                raise TooLarge
            self._parts.append(data)
            return
        layer = self._layers[index]
        while not layer.eof:  # bytes after the end of a stream are ignored
            out = layer.decompress(data, STEP)
            data = layer.unconsumed_tail
            if out:
                self._push(index + 1, out)
            # A full STEP may leave output inside zlib: ask again until it runs dry.
            if not data and len(out) < STEP:
                return
