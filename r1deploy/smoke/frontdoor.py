"""The front door's checks (docs/front-door.md): its certificate, HTTP sent to HTTPS, and the
model server's own routes kept from outside. The API key checks are vllm.auth's, which goes
through the front door when there is one."""

from __future__ import annotations

import datetime
import socket
import ssl
import urllib.parse

from r1deploy.smoke.runner import CheckFailed, CheckSkipped, CheckWarning

# vLLM answers these without its key; the front door must not pass them on.
HIDDEN_ROUTES = (
    ("POST", "/invocations"),
    ("POST", "/tokenize"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/load"),
    ("GET", "/version"),
)
CERT_FAIL_DAYS, CERT_WARN_DAYS = 7, 21


def _door(ctx) -> dict:
    door = ctx.config.front_door
    if not door:
        raise CheckSkipped("no front door (settings.json front_door; or --inside)")
    return door


def _days_left(ctx, url: str) -> float:
    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(
        cafile=ctx.config.verify if isinstance(ctx.config.verify, str) else None
    )
    address = (parts.hostname, parts.port or 443)
    with (
        socket.create_connection(address, timeout=ctx.timeout) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        end = ssl.cert_time_to_seconds(tls.getpeercert()["notAfter"])
    now = datetime.datetime.now(datetime.UTC).timestamp()
    return (end - now) / 86400


def frontdoor_tls(ctx):
    """Open WebUI through the front door, its certificate trusted and not about to end."""
    _door(ctx)
    url = ctx.config.webui_url
    response = ctx.session.get(f"{url}/", timeout=ctx.timeout)
    if response.status_code >= 400:
        raise CheckFailed(
            f"the front door answered HTTP {response.status_code} for {url}/"
            "\n    fix: look at the front door's log and Open WebUI's"
        )
    hsts = response.headers.get("strict-transport-security")
    if not hsts:
        raise CheckFailed("the front door sends no Strict-Transport-Security header")
    days = _days_left(ctx, url)
    data = {"days_left": round(days, 1)}
    renew = (
        "\n    fix: deploy again (internal CA: issued again within 30 days of its end; "
        "acme: certbot renews it), or replace r1_stack_tls_cert_file"
    )
    if days < CERT_FAIL_DAYS:
        raise CheckFailed(f"the front door's certificate ends in {days:.0f} days{renew}", data)
    if days < CERT_WARN_DAYS:
        raise CheckWarning(f"the front door's certificate ends in {days:.0f} days{renew}")
    return f"{url}/ over trusted TLS, HSTS; certificate ends in {days:.0f} days", data


def frontdoor_redirect(ctx):
    http = urllib.parse.urlsplit(_door(ctx)["http_url"])
    # Where the checks reach the front door (loopback with the stack's CA), on its HTTP port.
    url = f"http://{_host(ctx.config.webui_url)}" + (f":{http.port}" if http.port else "")
    response = ctx.session.get(f"{url}/x?y=1", timeout=ctx.timeout, follow_redirects=False)
    location = response.headers.get("location", "")
    if response.status_code != 301 or not location.startswith("https://"):
        raise CheckFailed(
            f"plain HTTP answered {response.status_code} (Location {location!r}), "
            "expected 301 to https://\n    fix: render the front door again"
        )
    return f"{url}/ -> 301 {location}"


def frontdoor_hidden_routes(ctx):
    _door(ctx)
    url = ctx.config.vllm_url
    reached = []
    for method, path in HIDDEN_ROUTES:
        response = ctx.session.request(
            method,
            f"{url}{path}",
            timeout=ctx.timeout,
            headers={"Authorization": f"Bearer {ctx.config.vllm_key}"},
        )
        if response.status_code not in (403, 404):
            reached.append(f"{method} {path}: HTTP {response.status_code}")
    if reached:
        raise CheckFailed(
            "the front door passes on model-server routes that no key guards: "
            + "; ".join(reached)
            + "\n    fix: render the front door again"
        )
    return f"{len(HIDDEN_ROUTES)} model-server routes answer 404 from outside"


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""
