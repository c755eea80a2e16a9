"""SSE parsing: events split anywhere by the network still come out whole."""

import json

from r1deploy.bench.sse import DONE, SSEParser

STREAM = (
    b'data: {"choices": [{"delta": {"content": "h\xc3\xa9"}}]}\n\n'
    b": ping\n\n"
    b'data: {"choices": [], "usage": {"completion_tokens": 2}}\r\n\r\n'
    b"data: [DONE]\n\n"
)


def parse_in_pieces(data: bytes, size: int) -> list[str]:
    parser = SSEParser()
    events = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i : i + size])
    return events + parser.close()


def test_events_survive_every_split_point_including_mid_utf8():
    whole = parse_in_pieces(STREAM, len(STREAM))
    assert len(whole) == 3
    assert json.loads(whole[0])["choices"][0]["delta"]["content"] == "hé"
    assert json.loads(whole[1])["usage"]["completion_tokens"] == 2
    assert whole[2] == DONE
    for size in range(1, 12):
        assert parse_in_pieces(STREAM, size) == whole


def test_comments_and_other_fields_are_skipped():
    parser = SSEParser()
    events = parser.feed(b': keep-alive\n\nevent: message\nid: 7\ndata: {"a": 1}\n\n')
    assert events == ['{"a": 1}']


def test_multiline_data_joins_with_newline_and_no_space_prefix_is_kept():
    parser = SSEParser()
    assert parser.feed(b"data: one\ndata:two\n\n") == ["one\ntwo"]


def test_last_event_without_blank_line_is_delivered_on_close():
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.close() == [DONE]


def test_incomplete_event_is_not_delivered_early():
    parser = SSEParser()
    assert parser.feed(b'data: {"choi') == []
    assert parser.feed(b'ces": []}\n') == []
    assert parser.feed(b"\n") == ['{"choices": []}']
