"""``/metrics`` on a port of its own (``RELAY_METRICS_PORT``), from a thread.

Every web worker and the Celery worker's main process may serve it: the
listening socket is opened with ``SO_REUSEPORT``, so the gunicorn workers of
one instance share the port and the kernel hands each scrape to one of them —
any of them, since each shows the instance's numbers (the shared folder of
``worker.metrics``, the database). Under gevent the thread is a greenlet and
the socket cooperative. ``RELAY_OPS_TOKEN``, when set, is asked for as
``Authorization: Bearer <token>`` here and on the web's own ``/metrics``.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from worker.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
CHALLENGE: tuple[tuple[str, str], ...] = (("WWW-Authenticate", 'Bearer realm="metrics"'),)


def authorized(header: str | None, token: str) -> bool:
    """No token configured, or ``header`` is ``Bearer <token>`` (constant-time)."""
    if not token:
        return True
    scheme, _, sent = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def metrics_app(render: Callable[[], bytes], token: str) -> Callable[..., Iterable[bytes]]:
    """The WSGI application: ``GET /metrics`` only."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _plain(start_response, "404 Not Found", b"not found\n")
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            refusal = b"a Bearer token is required\n"
            return _plain(start_response, "401 Unauthorized", refusal, CHALLENGE)
        try:
            body = render()
        except Exception:  # the scrape fails, the server stays
            log.exception("metrics could not be read")
            return _plain(start_response, "503 Service Unavailable", b"metrics unavailable\n")
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def _plain(
    start_response: StartResponse, status: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), *extra])
    return [body]


class _SharedPortServer(WSGIServer):
    """Binds with SO_REUSEPORT: the processes of one instance share the port."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # a scrape every 15 s is not news


def serve(port: int, render: Callable[[], bytes], token: str, host: str = "0.0.0.0") -> WSGIServer:
    """Serve ``render()`` as ``/metrics`` on ``port`` from a daemon thread."""
    server = make_server(host, port, metrics_app(render, token), _SharedPortServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="relay-metrics", daemon=True).start()
    return server
