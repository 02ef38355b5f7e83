"""Reading a webhook's body: a size limit whatever the framing, and a total deadline.

A client that sends its headers and then one byte every few seconds would
hold a worker (a thread, or a greenlet and a connection slot) for as long as
it likes: socket timeouts only bound the wait for *each* byte. So the whole
body has a deadline (``RELAY_BODY_TIMEOUT_SECONDS``, 10 s by default): a
watcher shuts the reading side of the connection when it passes, which wakes
the blocked read (a thread under gthread, a greenlet under gevent) with an end
of file, and the request is answered 408. The connection is then closed, since
what is left of its body is unknown.

Chunked bodies (``Transfer-Encoding: chunked``, no ``Content-Length``) are read
up to one byte over the limit, so an oversized one is 413 rather than cut at
the limit (which used to fail its signature: 401). Framing the server refuses
while the body is read (a bad chunk size, a missing terminator) is 400, never
an unhandled exception.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gunicorn.http.errors import ParseException

TICK_SECONDS = 0.1  # how late a deadline may be noticed


class BodyRefused(Exception):
    """The body cannot be read as sent; ``status`` is the answer (400, 408, 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_body(environ: dict[str, Any], limit: int, seconds: float) -> bytes:
    """The whole body, or ``BodyRefused``; at most ``limit`` bytes, within ``seconds``."""
    length = _content_length(environ)
    if length is not None and length > limit:
        raise BodyRefused(413, f"body over {limit} bytes")
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: no body (as Flask)
    connection = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    with _deadlines().watch(connection, seconds) as watch:
        try:
            body: bytes = environ["wsgi.input"].read(limit + 1 if length is None else length)
        except (OSError, ValueError, ParseException):
            body = b""
            if not watch.expired:
                _close_reading(connection)
                raise BodyRefused(400, "malformed request body framing") from None
    if watch.expired:
        raise BodyRefused(408, f"body not received within {seconds:g} s")
    if len(body) > limit:
        _close_reading(connection)
        raise BodyRefused(413, f"body over {limit} bytes")
    if length is not None and len(body) < length:
        raise BodyRefused(400, "body shorter than its Content-Length")
    return body


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None
    if not raw.isdigit():
        raise BodyRefused(400, "malformed Content-Length")
    return int(raw)


def _close_reading(connection: socket.socket | None) -> None:
    """No more of this request is read: the server closes the connection after answering."""
    if connection is None:
        return
    try:
        connection.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # already closed by the client


class _Watch:
    __slots__ = ("connection", "deadline", "expired")

    def __init__(self, connection: socket.socket | None, deadline: float) -> None:
        self.connection, self.deadline, self.expired = connection, deadline, False


class Deadlines:
    """One watcher per process for every body being read. Registering is a dict
    insert under a lock; the watcher wakes every ``TICK_SECONDS`` only while
    some body is being read, and shuts the reading side of the late ones."""

    def __init__(self) -> None:
        self._watches: dict[int, _Watch] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="body-deadlines", daemon=True)
        self._thread.start()

    @contextmanager
    def watch(self, connection: socket.socket | None, seconds: float) -> Iterator[_Watch]:
        entry = _Watch(connection, time.monotonic() + seconds)
        if connection is None or seconds <= 0:  # no socket to close (a test client)
            yield entry
            return
        key = next(self._ids)
        with self._lock:
            self._watches[key] = entry
        self._busy.set()
        try:
            yield entry
        finally:
            with self._lock:
                self._watches.pop(key, None)

    def _run(self) -> None:
        while True:
            self._busy.wait()
            time.sleep(TICK_SECONDS)
            self._expire(time.monotonic())

    def _expire(self, now: float) -> None:
        with self._lock:
            late = [key for key, entry in self._watches.items() if entry.deadline <= now]
            expired = [self._watches.pop(key) for key in late]
            if not self._watches:
                self._busy.clear()
        for entry in expired:
            entry.expired = True
            _close_reading(entry.connection)


_watchers: dict[int, Deadlines] = {}
_watchers_lock = threading.Lock()


def _deadlines() -> Deadlines:
    """This process's watcher, started on first use (so after gunicorn forks a worker)."""
    pid = os.getpid()
    watcher = _watchers.get(pid)
    if watcher is None:
        with _watchers_lock:
            watcher = _watchers.setdefault(pid, Deadlines())
    return watcher
