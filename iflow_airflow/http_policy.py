"""How iflow's outgoing HTTP requests (``wait: url`` checks, alert webhooks) may behave.

* Redirects: a ``wait: url`` check follows at most :data:`MAX_REDIRECTS` redirects, and
  only to http(s) on the same host (an http -> https upgrade is fine, a downgrade is
  not); any other redirect answers the check as "not 2xx yet". A webhook follows none:
  a POST that is redirected would be resent as a GET without its payload (urllib), or
  to a host the workflow never named; a 3xx is a failed delivery (the log says so).
* Time: a check is bounded as a whole (connect, headers, redirects) by one deadline,
  not per socket read: a server that trickles a byte every few seconds cannot stretch
  it past ``communication_timeout``.
* Size: a check reads the status line and headers only, never the body.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

MAX_REDIRECTS = 5


def redirect_allowed(origin: str, target: str, *, method: str = "GET") -> bool:
    """Whether a request to ``origin`` may follow a redirect to ``target`` (see the module docs)."""
    if method.upper() != "GET":
        return False
    a, b = urlsplit(origin), urlsplit(target)
    if b.scheme not in ("http", "https") or (a.scheme == "https" and b.scheme == "http"):
        return False
    return bool(b.hostname) and (a.hostname or "").lower() == (b.hostname or "").lower()


async def probe_url(url: str, timeout: float, client: Any = None) -> tuple[int | None, str]:
    """(status, what happened) of a GET to ``url``, bounded by ``timeout`` seconds in all.

    Status is None when no answer came in time (or the connection failed); a redirect
    that :func:`redirect_allowed` refuses is returned as its own 3xx status.
    """
    import httpx

    async def run(c: Any) -> tuple[int | None, str]:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            async with c.stream("GET", current) as response:  # headers only: the body is never read
                status = response.status_code
                location = response.headers.get("location")
            if not (300 <= status < 400 and location):
                return status, f"HTTP {status}"
            target = str(httpx.URL(current).join(location))
            if not redirect_allowed(current, target):
                return status, f"HTTP {status} to {target} (not followed: another host or scheme)"
            current = target
        return status, f"HTTP {status} (more than {MAX_REDIRECTS} redirects)"

    async def bounded(c: Any) -> tuple[int | None, str]:
        try:
            return await asyncio.wait_for(run(c), timeout=max(timeout, 0.01))
        except TimeoutError:
            return None, f"no answer within {timeout:g} s"
        except Exception as exc:  # connection refused, DNS, TLS, a bad redirect URL: not yet
            return None, f"{type(exc).__name__}: {exc}"

    if client is not None:
        return await bounded(client)
    async with httpx.AsyncClient(follow_redirects=False, timeout=max(timeout, 0.01)) as own:
        return await bounded(own)


def probe_url_sync(url: str, timeout: float) -> tuple[int | None, str]:
    """:func:`probe_url` from synchronous code (a worker's poke), in a fresh event loop."""
    return asyncio.run(probe_url(url, timeout))
