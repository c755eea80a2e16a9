"""tests/support/waiting.py: wait_until returns the value that satisfied it, and fails
naming what it waited for and the last value seen."""

from __future__ import annotations

import pytest

from tests.support.ports import free_port
from tests.support.waiting import answers, wait_until


def test_wait_until_returns_the_first_value_that_holds():
    values = iter([0, [], 3])
    assert wait_until(lambda: next(values), 5, "a value", interval_s=0) == 3
    counts = iter([1, 2, 5])
    assert wait_until(lambda: next(counts), 5, "more", interval_s=0, until=lambda c: c > 4) == 5


def test_wait_until_fails_with_what_and_the_last_value_seen():
    with pytest.raises(AssertionError) as caught:
        wait_until(
            lambda: {"health": "down"},
            0.05,
            "every target up",
            interval_s=0.01,
            until=lambda seen: seen["health"] == "up",
        )
    assert str(caught.value) == (
        "not within 0.05 s: every target up (last seen: {'health': 'down'})"
    )
    with pytest.raises(AssertionError, match=r"\.\.\.\)$"):
        wait_until(lambda: "x" * 5000, 0, "nothing", interval_s=0, until=lambda v: False)


def test_wait_until_lets_the_condition_raise():
    def broken():
        raise RuntimeError("the server exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until(broken, 5, "never")


def test_answers_is_false_where_nothing_listens():
    assert not answers(f"http://127.0.0.1:{free_port()}/v1/models", timeout_s=0.5)
