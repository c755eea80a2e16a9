"""The gateway's bounded decoder: same bytes as zlib, and never past the cap."""

from __future__ import annotations

import random
import zlib

import pytest

from r1deploy.gateway.decoding import STEP, BadEncoding, BoundedDecoder, TooLarge


def gzip(data: bytes, layers: int = 1) -> bytes:
    for _ in range(layers):
        compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        data = compressor.compress(data) + compressor.flush()
    return data


def feed_in_chunks(decoder: BoundedDecoder, data: bytes, size: int) -> bytes:
    for start in range(0, len(data), size):
        decoder.feed(data[start : start + size])
    return decoder.content()


# Compressible and not: runs of one byte (a match longer than STEP) and random bytes.
BODY = bytes(3 * STEP + 17) + random.Random(14).randbytes(STEP) + b"end"


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_decodes_what_zlib_encoded_whatever_the_chunking(layers, chunk):
    header = ", ".join(["gzip"] * layers)
    decoder = BoundedDecoder(header, cap=len(BODY))
    assert feed_in_chunks(decoder, gzip(BODY, layers), chunk) == BODY


def test_deflate_and_identity():
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    wrapped = compressor.compress(BODY) + compressor.flush()
    assert feed_in_chunks(BoundedDecoder("deflate", len(BODY)), wrapped, 999) == BODY
    assert feed_in_chunks(BoundedDecoder("identity", 3), b"abc", 1) == b"abc"
    assert feed_in_chunks(BoundedDecoder(None, 3), b"abc", 2) == b"abc"


def test_stops_one_byte_past_the_cap():
    decoder = BoundedDecoder("gzip", cap=len(BODY) - 1)
    with pytest.raises(TooLarge):
        feed_in_chunks(decoder, gzip(BODY), 1 << 20)
    assert sum(map(len, decoder._parts)) <= len(BODY) - 1


def test_bytes_after_the_end_of_the_stream_are_ignored():
    decoder = BoundedDecoder("gzip", cap=10)
    assert feed_in_chunks(decoder, gzip(b"hello") + b"trailing junk", 3) == b"hello"


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, gzip, gzip", "compress"])
def test_codings_it_does_not_decode_are_refused_before_reading(header):
    with pytest.raises(BadEncoding):
        BoundedDecoder(header, cap=10)


def test_a_corrupt_body_is_refused():
    with pytest.raises(BadEncoding, match="does not decode"):
        BoundedDecoder("gzip", cap=10).feed(b"not gzip at all")
