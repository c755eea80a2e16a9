"""Where `r1deploy top`'s figures come from: the services of a stack directory and a Source.

``targets`` reads the services from settings.json as `r1deploy doctor` and the smoke do:
the model server at ``vllm.url`` and the tool gateway at ``gateway.url`` (when
``gateway.enabled``), both the inside URLs a host reaches on loopback, never the front door
(which hides ``/metrics``).

A Source is anything with ``frame() -> Frame``. ``DirectSource`` GETs each service's
``/metrics`` and keeps the last scrape to compute rates against. A Prometheus source (once
the roles deploy one) would ask ``rate(...)`` and ``histogram_quantile(...)`` of it instead
and return the same Frame.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from r1deploy.stackdir import StackDir
from r1deploy.top.figures import Frame, Scrape, gateway_view, model_server_view, parse

MODEL_SERVER = "model_server"
GATEWAY = "gateway"
# The model server's key in .env: vLLM's covers /v1/* only, llama.cpp's server asks for it
# on every route, /metrics included (LLAMA_API_KEY is set from it).
MODEL_SERVER_KEY_ENV = "VLLM_API_KEY"


@dataclass(frozen=True)
class Target:
    kind: str  # MODEL_SERVER or GATEWAY
    name: str  # the service's name (compose service; the native runtime's)
    url: str  # base URL, without /metrics
    engine: str = ""  # model servers: vllm or llama_cpp (settings.json engine)
    key_env: str | None = None  # the .env variable whose value is sent as a bearer key


def targets(stack: StackDir) -> list[Target]:
    """The stack's model server and tool gateway, from settings.json."""
    settings = stack.settings
    found = []
    vllm = settings.get("vllm") or {}
    if vllm.get("url"):
        # The native runtime runs the model server as its service `vllm` in either profile.
        native = settings.get("runtime") == "native"
        name = "vllm" if native else vllm.get("service", "vllm")
        engine = settings.get("engine") or vllm.get("server") or "vllm"
        url = vllm["url"].rstrip("/")
        found.append(Target(MODEL_SERVER, name, url, engine, MODEL_SERVER_KEY_ENV))
    gateway = settings.get("gateway") or {}
    if gateway.get("enabled") and gateway.get("url"):
        name = gateway.get("service", "tools-gateway")
        found.append(Target(GATEWAY, name, gateway["url"].rstrip("/")))
    return found


class Source(Protocol):
    name: str

    def frame(self) -> Frame: ...


def describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "nothing answers there (connection refused or no route)"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


def _now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class DirectSource:
    """Each target's /metrics, read at every frame; rates against the frame before."""

    name = "direct"

    def __init__(
        self,
        found: list[Target],
        env: dict[str, str],
        *,
        timeout_s: float = 2.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = _now_iso,
    ):
        self.targets = found
        self.env = env
        self.timeout_s = timeout_s
        self.http = http or httpx.Client(follow_redirects=True)
        self.clock = clock
        self.wall_clock = wall_clock
        self.previous: dict[Target, Scrape] = {}

    def scrape(self, target: Target) -> Scrape:
        url = f"{target.url}/metrics"
        key = self.env.get(target.key_env) if target.key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = self.http.get(url, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return Scrape(self.clock(), error=f"{url}: {describe(exc)}")
        at = self.clock()
        if response.status_code != 200:
            error = f"{url}: HTTP {response.status_code}"
            if response.status_code in (401, 403) and target.key_env:
                error += (
                    f" (the key .env {target.key_env} was refused)"
                    if key
                    else f" (it asks for a key: .env has no {target.key_env})"
                )
            return Scrape(at, error=error)
        scrape = parse(response.text, at)
        if not scrape.ok:
            return Scrape(at, error=f"{url}: {scrape.error}")
        return scrape

    def frame(self) -> Frame:
        model_servers, gateways = [], []
        for target in self.targets:
            now = self.scrape(target)
            before = self.previous.get(target)
            if target.kind == MODEL_SERVER:
                view = model_server_view(target.name, target.url, target.engine, before, now)
                model_servers.append(view)
            else:
                gateways.append(gateway_view(target.name, target.url, before, now))
            self.previous[target] = now
        return Frame(self.wall_clock(), self.name, model_servers, gateways)

    def close(self) -> None:
        self.http.close()
