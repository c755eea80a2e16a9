"""Call the upstream API of a route: host allowlist, redirects, timeout, size cap."""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass

import httpcore
import httpx

from r1deploy.gateway import decoding
from r1deploy.gateway.netpolicy import AddressRefused, VettedNetworkBackend
from r1deploy.gateway.routes import Origin, Route

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Uncompressed answers: decoding a compressed one costs the gateway memory and CPU
# (decoding.py bounds both when an upstream compresses anyway).
REQUEST_HEADERS = {"Accept-Encoding": "identity"}
# Enough for 32 concurrent callers on one host with headroom.
POOL_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=64)


class GatewayError(Exception):
    """A call that cannot be answered with the upstream's result: status and reason."""

    def __init__(self, status: int, code: str, message: str, pointer: str | None = None):
        self.status, self.code, self.message, self.pointer = status, code, message, pointer
        super().__init__(message)

    def to_dict(self) -> dict:
        body = {"detail": self.message, "error": self.code}
        if self.pointer is not None:
            body["pointer"] = self.pointer
        return body


@dataclass
class UpstreamAnswer:
    status: int
    content: bytes
    content_type: str | None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a while; every pool shares one context.
    return httpx.create_ssl_context(trust_env=False)


def _transport(allow_private_network: bool) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(verify=_ssl_context(), limits=POOL_LIMITS)
    # httpx does not take a network backend; its pool does. Same settings as httpx's own.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=_ssl_context(),
        max_connections=POOL_LIMITS.max_connections,
        max_keepalive_connections=POOL_LIMITS.max_keepalive_connections,
        keepalive_expiry=POOL_LIMITS.keepalive_expiry,
        network_backend=VettedNetworkBackend(allow_private_network),
    )
    return transport


def _headers(route: Route) -> httpx.Headers:
    headers = httpx.Headers(REQUEST_HEADERS)
    headers.update(route.headers)  # case-insensitive: a plugin's own Accept-Encoding wins
    return headers


def _origin(url: httpx.URL) -> Origin:
    default = 443 if url.scheme == "https" else 80
    return Origin(url.scheme, url.host.lower(), url.port or default)


class Upstream:
    """Async HTTP client for every route: one pool for public-only plugins, one for the
    plugins that may reach private networks."""

    def __init__(self):
        # No environment proxies: the address check must see the real upstream.
        self._clients = {
            allow: httpx.AsyncClient(
                transport=_transport(allow), follow_redirects=False, trust_env=False
            )
            for allow in (False, True)
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def call(self, route: Route, arguments: dict) -> UpstreamAnswer:
        url, body = route.build_request(arguments)
        try:
            async with asyncio.timeout(route.timeout_s):
                return await self._exchange(route, httpx.URL(url), route.method, body)
        except TimeoutError:
            raise GatewayError(
                504,
                "upstream-timeout",
                f"{route.name}: the upstream API did not answer within {route.timeout_s:g} s "
                "(timeout_s in tools.json)",
            ) from None

    async def _exchange(
        self, route: Route, url: httpx.URL, method: str, body: dict | None
    ) -> UpstreamAnswer:
        client = self._clients[route.allow_private_network]
        for _ in range(MAX_REDIRECTS + 1):
            if _origin(url) != route.origin:
                # Never reached through arguments (they are encoded into one segment);
                # this guards the redirects below.
                raise GatewayError(
                    502,
                    "redirect-off-host",
                    f"{route.name}: the upstream API redirected to {url.scheme}://{url.host}; "
                    f"the gateway follows redirects only within {route.origin}",
                )
            request = client.build_request(
                method,
                url,
                json=body,
                headers=_headers(route),
                timeout=route.timeout_s,
            )
            try:
                response = await client.send(request, stream=True)
            except AddressRefused as exc:
                raise GatewayError(502, "address-refused", f"{route.name}: {exc}") from None
            except httpx.TimeoutException:
                raise TimeoutError from None
            except httpx.HTTPError as exc:
                raise GatewayError(
                    502, "upstream-unreachable", f"{route.name}: cannot reach {url.host}: {exc}"
                ) from None
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    url = url.join(location)
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method, body = "GET", None
                    continue
                content = await _read_capped(route, response)
            finally:
                await response.aclose()
            if not response.is_success:
                excerpt = content[:512].decode("utf-8", "replace")
                raise GatewayError(
                    502,
                    "upstream-error",
                    f"{route.name}: the upstream API answered HTTP {response.status_code}: "
                    f"{excerpt}",
                )
            return UpstreamAnswer(
                response.status_code, content, response.headers.get("content-type")
            )
        raise GatewayError(
            502, "too-many-redirects", f"{route.name}: more than {MAX_REDIRECTS} redirects"
        )


async def _read_capped(route: Route, response: httpx.Response) -> bytes:
    cap = route.max_response_bytes
    too_large = GatewayError(
        502,
        "response-too-large",
        f"{route.name}: the upstream answer is larger than max_response_bytes ({cap} bytes); "
        "raise max_response_bytes in tools.json or ask the API for less",
    )
    declared = response.headers.get("content-length")
    plain = not decoding.codings(response.headers.get("content-encoding"))
    if plain and declared and declared.isdigit() and int(declared) > cap:
        raise too_large
    try:
        decoder = decoding.BoundedDecoder(response.headers.get("content-encoding"), cap)
        # Raw bytes: httpx would decode each chunk whole before anything could count it.
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
    except decoding.TooLarge:
        raise too_large from None
    except decoding.BadEncoding as exc:
        raise GatewayError(
            502, "upstream-bad-encoding", f"{route.name}: the upstream answer: {exc}"
        ) from None
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.HTTPError as exc:  # the body broke off: closed or reset half-way
        raise GatewayError(
            502,
            "upstream-unreachable",
            f"{route.name}: cannot reach {response.url.host}: the answer broke off ({exc})",
        ) from None
    return decoder.content()
