"""`--wait-ready`: poll the health endpoints with backoff while a fresh stack starts."""

from __future__ import annotations

import time

import httpx


def wait_ready(
    endpoints: dict[str, str], seconds: float, session: httpx.Client, log=print
) -> dict[str, str]:
    """Poll each ``name -> health URL`` until it answers 200 or ``seconds`` run out.

    Returns ``name -> last error`` for those that never came up.
    """
    deadline = time.monotonic() + seconds
    pending = dict(endpoints)
    errors: dict[str, str] = {}
    delay = 0.5
    while pending:
        for name, url in list(pending.items()):
            try:
                response = session.get(url, timeout=5)
                if response.status_code == 200:
                    log(f"ready: {name} ({url})")
                    del pending[name]
                    continue
                errors[name] = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                errors[name] = type(exc).__name__
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0:
            break
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 10.0)
    return {name: errors.get(name, "no answer") for name in pending}
