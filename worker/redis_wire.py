"""A Redis connection for the handful of commands the web process sends.

The receiver talks to Redis for two things only: the inbox bell (``SET NX``,
``LPUSH`` of one drain message, ``worker.dispatch``) and the queue gauges at
scrape time (``LLEN``, ``LINDEX``, ``worker.queues``). redis-py with kombu on
top cost each web worker about 8.5 MB (``bench/web_memory.py``) for that, so
the web speaks the protocol itself: RESP2 requests and replies over one
socket (TCP, TLS for ``rediss://``, or a Unix socket), ``AUTH`` and ``SELECT``
from the URL, timeouts on connect and on every read. Under gevent the socket
is cooperative. A worker's dispatcher pushes its batches of messages through it
too (``worker.dispatch.enqueue_chunks``: one round trip for a dispatch's
messages); everything else a worker does with Redis goes through Celery/kombu.

Errors: ``WireError`` for a refused command (Redis's ``-ERR …``), ``OSError``
(``ConnectionError``, ``TimeoutError``) when Redis cannot be reached; after
either the connection is dropped and the next command opens a new one.
"""

from __future__ import annotations

import socket
import ssl
import threading
import weakref
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Reply = bytes | int | None | list[Any]


class WireError(Exception):
    """Redis refused a command (its error line, which never holds our values)."""


class RedisWire:
    def __init__(self, url: str, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        self._url, self._connect_timeout, self._timeout = url, connect_timeout, timeout
        self._socket: socket.socket | None = None
        self._reader: Any = None
        self._closer: weakref.finalize[[socket.socket, Any], RedisWire] | None = (
            None  # closes with us
        )
        self._lock = threading.Lock()

    def call(self, *args: str | bytes | int) -> Reply:
        """One command, its reply."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: list[tuple[str | bytes | int, ...]]) -> list[Reply]:
        """Several commands in one round trip; their replies in order."""
        with self._lock:
            try:
                self._connected().sendall(b"".join(encode(command) for command in commands))
                return [read_reply(self._reader) for _ in commands]
            except (OSError, WireError):
                self.close()
                raise

    def close(self) -> None:
        if self._closer is not None:
            self._closer()  # closes the socket once; the finalizer is spent
        self._socket = self._reader = self._closer = None

    def _connected(self) -> socket.socket:
        if self._socket is None:
            target = urlsplit(self._url)
            sock = self._open(target)
            self._socket, self._reader = sock, sock.makefile("rb")
            self._closer = weakref.finalize(self, _close, sock, self._reader)
            for command in _handshake(target):
                sock.sendall(encode(command))
                read_reply(self._reader)
        return self._socket

    def _open(self, target: Any) -> socket.socket:
        if target.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._connect_timeout)
            sock.connect(target.path)
        else:
            address = (target.hostname or "localhost", target.port or 6379)
            sock = socket.create_connection(address, timeout=self._connect_timeout)
            if target.scheme == "rediss":
                context = ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=address[0])
        sock.settimeout(self._timeout)
        return sock


def _close(sock: socket.socket, reader: Any) -> None:
    reader.close()
    sock.close()


def _handshake(target: Any) -> list[tuple[str, ...]]:
    """``AUTH`` and ``SELECT`` as the URL asks (``redis://user:pw@host:port/db``)."""
    commands: list[tuple[str, ...]] = []
    if target.password:
        user = unquote(target.username) if target.username else None
        password = unquote(target.password)
        commands.append(("AUTH", user, password) if user else ("AUTH", password))
    query = parse_qs(target.query)
    database = query.get("db", [target.path.strip("/") if target.scheme != "unix" else ""])[0]
    if database and database != "0":
        commands.append(("SELECT", database))
    return commands


def encode(command: tuple[str | bytes | int, ...]) -> bytes:
    """A RESP2 request: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for argument in command:
        data = argument if isinstance(argument, bytes) else str(argument).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(reader: Any) -> Reply:
    """One RESP2 reply: a status, an error (raised), an integer, a bulk string, an array."""
    line: bytes = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise WireError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == b"-1" else _bulk(reader, int(rest))
    if kind == b"*":
        return None if rest == b"-1" else [read_reply(reader) for _ in range(int(rest))]
    raise ConnectionError(f"not a Redis reply: {line[:20]!r}")


def _bulk(reader: Any, length: int) -> bytes:
    data = bytes(reader.read(length + 2))
    if len(data) != length + 2:
        raise ConnectionError("Redis closed the connection")
    return data[:-2]
