"""Serve a WSGI app on a local port in a background thread (tests and the demo)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

POLL_INTERVAL = 0.05  # how quickly stop() is noticed


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: tests and the demo print what matters themselves."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class RunningServer:
    """A server started by ``serve_in_thread``; stop it, or use it as a context manager."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._server.host)

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
) -> RunningServer:
    """Start ``app`` on ``host:port`` (0 picks a free port) in a daemon thread, threaded."""
    handler = QuietRequestHandler if quiet else WSGIRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_INTERVAL},
        name=f"sandbox-{server.port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(server, thread)
