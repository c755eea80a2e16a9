"""A rolling restart of the replicas behind vLLM's router (docs/scale-out.md).

One replica at a time: taken out of the router's rotation (``POST /remove_worker``), left
until the requests it holds are done (its own ``vllm:num_requests_running`` and
``_waiting`` at 0), restarted, smoked on its own URL, and put back (``POST /add_worker``),
then the next. A replica that does not come back healthy or fails its smoke stops the
run and stays out of rotation: the others go on serving, and the message says which
replica and how to put it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from r1deploy.top import figures

IN_FLIGHT = ("vllm:num_requests_running", "vllm:num_requests_waiting")


class RollingError(RuntimeError):
    """The rolling restart stopped; the message says where, and what serves meanwhile."""


@dataclass(frozen=True)
class Replica:
    service: str
    url: str  # base URL, as the router lists it


@dataclass(frozen=True)
class Timeouts:
    drain_s: float = 600  # R1 answers stream for minutes
    ready_s: float = 900  # vLLM loads the model again
    rejoin_s: float = 120  # the router's health checks take it back (2 x 5 s here)
    poll_s: float = 1.0


def in_flight(client: httpx.Client, replica: Replica) -> int:
    """Requests running or queued on the replica (its own /metrics, no key needed), read
    with `r1deploy top`'s parser."""
    text = client.get(f"{replica.url}/metrics", timeout=10).raise_for_status().text
    scrape = figures.parse(text, time.time())
    if not scrape.ok:
        raise ValueError(scrape.error)
    return int(sum(figures.total(scrape, name) or 0 for name in IN_FLIGHT))


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def router_workers(client: httpx.Client, router_url: str) -> dict[str, bool]:
    """{worker URL: healthy} as the router sees them (its /workers)."""
    body = client.get(f"{router_url}/workers", timeout=10).raise_for_status().json()
    workers = body.get("workers", body) if isinstance(body, dict) else body
    return {w["url"].rstrip("/"): bool(w.get("is_healthy", True)) for w in workers}


def _wait(what: str, condition: Callable[[], bool], timeout_s: float, poll_s: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what} not within {timeout_s:.0f} s")
        time.sleep(poll_s)
    return time.monotonic() - start


def rolling_restart(
    router_url: str,
    replicas: list[Replica],
    restart: Callable[[str], None],
    smoke: Callable[[str], bool],
    log: Callable[[str], None] = print,
    timeouts: Timeouts | None = None,
    client: httpx.Client | None = None,
) -> None:
    """Restart each replica in turn behind the router; RollingError when one fails."""
    t = timeouts or Timeouts()
    client = client or httpx.Client()
    known = router_workers(client, router_url)
    for number, replica in enumerate(replicas, start=1):
        name = f"{replica.service} ({replica.url}, {number}/{len(replicas)})"
        others = [r.url for r in replicas if r is not replica]
        if not any(known.get(url) for url in others) and len(replicas) > 1:
            raise RollingError(
                f"{name}: no other replica is healthy at the router, so taking it out would "
                "stop the service. Fix: bring the others back first (make status)."
            )
        if replica.url in known:
            client.post(
                f"{router_url}/remove_worker", params={"url": replica.url}, timeout=30
            ).raise_for_status()
        else:  # left out by a rolling restart that stopped at it
            log(f"{name}: not in the router's rotation; restarting it and putting it back")
        try:
            drained = _wait(
                f"{name} drained", lambda r=replica: in_flight(client, r) == 0, t.drain_s, t.poll_s
            )
        except (TimeoutError, ValueError, httpx.HTTPError) as exc:
            log(f"{name}: still busy ({exc}); restarting it anyway")
            drained = t.drain_s
        log(f"{name}: out of rotation, drained in {drained:.1f} s; restarting")
        restart(replica.service)
        try:
            ready = _wait(
                f"{name} healthy", lambda r=replica: _healthy(client, r.url), t.ready_s, t.poll_s
            )
        except TimeoutError as exc:
            raise RollingError(_left_out(name, replica.service, str(exc))) from None
        log(f"{name}: healthy {ready:.0f} s after the restart; smoke on its own URL")
        if not smoke(replica.url):
            raise RollingError(_left_out(name, replica.service, "it failed its smoke (above)"))
        # The router checks it before it adds it (this call returns once it is healthy).
        client.post(
            f"{router_url}/add_worker", params={"url": replica.url}, timeout=t.rejoin_s
        ).raise_for_status()
        try:
            _wait(
                f"{name} back in the router's rotation",
                lambda r=replica: router_workers(client, router_url).get(r.url, False),
                t.rejoin_s,
                t.poll_s,
            )
        except TimeoutError as exc:
            raise RollingError(_left_out(name, replica.service, str(exc))) from None
        known = router_workers(client, router_url)
        log(f"{name}: back in rotation")


def _left_out(name: str, service: str, why: str) -> str:
    return (
        f"{name}: {why}. It is out of the router's rotation; the other replicas serve. "
        f"Fix: see its log (make logs SERVICE={service}), then make rolling-restart "
        f"SERVICE={service}: it puts the replica back once it passes its smoke."
    )
