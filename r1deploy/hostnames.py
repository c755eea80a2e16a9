"""Host names that are IPv4 addresses in disguise.

Resolvers (inet_aton), curl and browsers read 0177.0.0.1 (octal), 2130706433 (one
number), 0x7f.1 (hex) and 127.1 (short) as 127.0.0.1. Written that way in tools.json,
an address hides from a reader, and the gateway's HTTP client refuses some forms and
resolves others, so every call of the plugin fails. Only a.b.c.d in decimal is accepted.
"""

from __future__ import annotations

import ipaddress
import re
import socket

# As in the WHATWG URL standard: a host whose last label is a number is an IPv4 address.
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def noncanonical_ipv4(host: str) -> str | None:
    """None for a name or a dotted-decimal IPv4 address; for any other host that reads
    as IPv4, its dotted-decimal form, or "" when it is no valid address at all."""
    labels = host.removesuffix(".").split(".")
    if not _NUMBER.fullmatch(labels[-1]):
        return None
    try:
        ipaddress.IPv4Address(host)
        return None
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host.removesuffix(".")))
    except OSError:
        return ""
