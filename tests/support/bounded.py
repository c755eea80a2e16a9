"""Run one hostile-input case in a forked child and measure it: answer, seconds, memory.

A regression must fail its test, not the machine: the child runs under an address-space
limit (RLIMIT_AS) and the parent kills it after a wall-clock limit, so a hang or a
memory blow-up ends the child, never pytest. Memory is the growth of the child's peak
RSS (VmHWM, reset when the case starts) over its RSS at that moment. Time is measured
twice: wall-clock (time.monotonic) and the CPU the child used (all its threads), which
does not grow when other processes crowd the machine.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass
class Bounded:
    result: object
    seconds: float
    cpu_seconds: float
    rss_growth: int
    error: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.seconds * 1000:.0f} ms ({self.cpu_seconds * 1000:.0f} ms CPU), "
            f"peak RSS +{self.rss_growth / MIB:.1f} MiB"
            + (f", raised {self.error}" if self.error else "")
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def _child(conn, fn: Callable, args: tuple, address_space: int) -> None:
    try:
        limit = _status_kib("VmSize") * 1024 + address_space
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        started, cpu_started = time.monotonic(), _cpu_seconds()
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            error = f"{type(exc).__name__}: {exc}"[:2000]
            error += "\n" + "".join(traceback.format_exc(limit=-3))[-2000:]
        seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu_started
        growth = (_status_kib("VmHWM") - before) * 1024
        conn.send(Bounded(result, seconds, cpu, growth, error))
    finally:
        conn.close()
        os._exit(0)


def run_bounded(
    fn: Callable, *args, address_space: int = 1024 * MIB, timeout: float = 20.0
) -> Bounded:
    """``fn(*args)`` in a forked child; AssertionError if it does not finish in ``timeout``."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, fn, args, address_space), daemon=True)
    started = time.monotonic()
    # The child measures the case, not the test session it inherits: frozen, the session's
    # objects are skipped by the child's garbage collections (which would otherwise walk,
    # and copy on write, the whole inherited heap: 3x a case's CPU once a full run grew it).
    gc.collect()
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    send.close()
    try:
        if not receive.poll(timeout):
            raise AssertionError(f"the case did not finish within {timeout:g} s (hung?)")
        return receive.recv()
    except EOFError:
        raise AssertionError(
            f"the child died after {time.monotonic() - started:.1f} s "
            f"(exit code {child.exitcode}; killed for memory?)"
        ) from None
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()
