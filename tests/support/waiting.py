"""wait_until: poll a condition until it holds, or fail saying what was awaited and what was
last seen. For tests that wait on a server, a scrape or a process."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = 1.0,
    until: Callable[[T], object] = bool,
) -> T:
    """Call ``condition`` every ``interval_s`` until ``until`` of what it returns is true
    (by default: a truthy value), and return that value. After ``timeout_s`` seconds,
    AssertionError naming ``what`` and the last value seen. An exception the condition
    raises ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if until(value):
            return value
        if time.monotonic() > deadline:
            seen = repr(value)
            seen = seen if len(seen) <= 2000 else seen[:2000] + "..."
            raise AssertionError(f"not within {timeout_s:g} s: {what} (last seen: {seen})")
        time.sleep(interval_s)


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a GET of ``url`` gets a 2xx or 3xx answer now (a condition for wait_until)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except OSError:
        return False
