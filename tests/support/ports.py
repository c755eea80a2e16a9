"""Loopback ports for servers the tests start: this project's range, first free one."""

from __future__ import annotations

import socket

PORT_RANGE = range(18100, 18200)


def bind_free_port(sock: socket.socket, host: str = "127.0.0.1") -> int:
    """Bind ``sock`` to the first free port of PORT_RANGE on ``host`` and return it."""
    for port in PORT_RANGE:
        try:
            sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port of PORT_RANGE free right now (for servers started as other processes)."""
    with socket.socket() as probe:
        return bind_free_port(probe, host)
