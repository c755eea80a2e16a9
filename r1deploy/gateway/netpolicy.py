"""Which addresses the gateway may connect to, checked after DNS resolution.

The check sits in the HTTP client's network backend, at connect time, on the very
address the socket connects to: a name that resolves to a public address when
validated and to 169.254.169.254 a moment later (DNS rebinding) is still refused, and
so is every redirect target.
"""

from __future__ import annotations

import ipaddress
import socket

import anyio
import httpcore

# Cloud metadata services: AWS/GCP/Azure/OpenStack on 169.254.169.254 (inside the
# link-local block), AWS over IPv6 on fd00:ec2::254 (inside the private fc00::/7).
METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class AddressRefused(Exception):
    """The upstream host resolves to an address this plugin may not reach."""

    def __init__(self, host: str, address: str, why: str):
        self.host, self.address, self.why = host, address, why
        super().__init__(
            f"upstream host {host} resolves to {address} ({why}): refused; set "
            '"allow_private_network": true on the plugin in tools.json if it is meant '
            "to reach that network"
        )


# IPv6 forms that carry an IPv4 address (RFC 4291, 2765, 6052, 3056, 4380): a
# connection to one can reach that IPv4 address through the kernel, a NAT64 gateway or
# a 6to4/Teredo relay, and the ipaddress module calls most of them global. So the
# embedded address is what gets judged.
_EMBEDDING_NETWORKS = (
    (ipaddress.ip_network("::ffff:0:0:0/96"), "IPv4-translated"),
    (ipaddress.ip_network("64:ff9b::/96"), "NAT64"),
    (ipaddress.ip_network("::/96"), "IPv4-compatible"),
)
# RFC 8215's local-use NAT64 prefix: where the IPv4 address sits is up to the network.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and the name of the form; else None."""
    if ip.sixtofour:
        return ip.sixtofour, "6to4"
    if ip.teredo:
        return ip.teredo[1], "Teredo"  # the client's address, de-obfuscated
    for network, form in _EMBEDDING_NETWORKS:
        if ip in network and int(ip) > 1:  # :: and ::1 are themselves, not IPv4
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), form
    return None


def refusal(address: str) -> str | None:
    """Why a public-only gateway must not connect to this address, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped  # the kernel connects to it over IPv4
        elif ip in LOCAL_NAT64:
            return "local-use NAT64 address"
        elif embedded := embedded_ipv4(ip):
            inner, form = embedded
            why = refusal(str(inner))
            if why:
                return f"{form} address carrying {why} {inner}"
    if any(ip in network for network in METADATA_NETWORKS if network.version == ip.version):
        return "link-local / cloud metadata address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "non-public address"
    return None


async def resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without repeats."""
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


class VettedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host once, checks every address it got, then connects to one of
    those addresses (never to the name, which could resolve differently a second time)."""

    def __init__(self, allow_private_network: bool):
        self.allow_private_network = allow_private_network
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host, port, timeout=None, local_address=None, socket_options=None
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port, timeout)
        if not self.allow_private_network:
            for address in addresses:
                why = refusal(address)
                if why:
                    raise AddressRefused(host, address, why)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"{host} did not resolve")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("the tool gateway does not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
