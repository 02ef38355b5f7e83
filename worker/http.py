"""The one place outbound HTTP clients are built.

Every platform client and sink gets its ``httpx.Client`` from here so that
timeouts, User-Agent, ``Accept: application/json`` (Salla's WAF answers an HTML
403 without both) and connection pooling are the same everywhere. One client
per process, created lazily; tests point base URLs at local servers.
"""

from __future__ import annotations

import threading

import httpx

USER_AGENT = "loyalty-relay/0.1 (+https://github.com/loyalty-relay)"

_lock = threading.Lock()
_clients: dict[float, httpx.Client] = {}


def build_client(timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )


def shared_client(timeout: float = 10.0) -> httpx.Client:
    """The process-wide client for ``timeout`` (pooled connections, thread-safe)."""
    with _lock:
        client = _clients.get(timeout)
        if client is None or client.is_closed:
            client = _clients[timeout] = build_client(timeout)
        return client
