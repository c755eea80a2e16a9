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


def refusal(address: str) -> str | None:
    """Why a public-only gateway must not connect to this address, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
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


class VettedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks every address, then connects to a checked one."""

    def __init__(self, allow_private_network: bool):
        self.allow_private_network = allow_private_network
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host, port, timeout=None, local_address=None, socket_options=None
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
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
