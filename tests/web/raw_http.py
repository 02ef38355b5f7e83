"""Hand-framed HTTP/1.1 over a plain socket: what no HTTP client library lets a test send."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from worker.platforms.salla import samples


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def exchange(url: str, raw: bytes, timeout: float = 10.0) -> int | None:
    """Send ``raw``, then the status of the answer (None: closed without one)."""
    with socket.create_connection(address(url), timeout=timeout) as connection:
        try:
            connection.sendall(raw)
        except OSError:
            pass  # the server may answer and close before taking all of a refused body
        return status_of(_read_head(connection))


def _read_head(connection: socket.socket) -> bytes:
    received = b""
    while b"\r\n" not in received:
        try:
            data = connection.recv(4096)
        except OSError:
            break
        if not data:
            break
        received += data
    return received


def status_of(head: bytes) -> int | None:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def request(path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A POST with exactly these headers (no Content-Length is added) and body."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def chunked(body: bytes, size: int = 4096) -> bytes:
    pieces = [body[at : at + size] for at in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def signed_salla(body: bytes, secret: str) -> dict[str, str]:
    return samples.signed_headers(body, secret)


class SlowClients:
    """``count`` connections that send complete headers announcing a 100 kB body,
    then one byte each every ``interval`` seconds (from one background thread)."""

    def __init__(
        self, url: str, count: int, interval: float = 2.0, sources: tuple[str, ...] = ("",)
    ) -> None:
        self.url, self.count, self.interval = url, count, interval
        self.sources = sources  # local addresses to connect from, in turn ("": any)
        self.sockets: list[socket.socket] = []
        self.answers: dict[int, bytes] = {}
        self._stop = threading.Event()

    @contextmanager
    def held(self) -> Iterator[SlowClients]:
        head = request("/webhooks/salla", {"Content-Length": "100000"}, b"{")
        for n in range(self.count):
            source = (self.sources[n % len(self.sources)], 0)
            connection = socket.create_connection(address(self.url), 10, source)
            connection.sendall(head)
            connection.setblocking(False)
            self.sockets.append(connection)
        trickle = threading.Thread(target=self._trickle, daemon=True)
        trickle.start()
        try:
            yield self
        finally:
            self._stop.set()
            trickle.join()
            for connection in self.sockets:
                connection.close()

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            for connection in self.sockets:
                try:
                    connection.send(b" ")
                except OSError:
                    pass  # answered and closed by the server

    def collect_answers(self, within: float) -> dict[int | None, int]:
        """Read what the server answered each connection; a count per status."""
        selector = selectors.DefaultSelector()
        for connection in self.sockets:
            selector.register(connection, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        while len(self.answers) < self.count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                connection = key.fileobj
                assert isinstance(connection, socket.socket)
                try:
                    self.answers[connection.fileno()] = connection.recv(4096)
                except OSError:
                    self.answers[connection.fileno()] = b""
                selector.unregister(connection)
        selector.close()
        counts: dict[int | None, int] = {}
        for answer in self.answers.values():
            counts[status_of(answer)] = counts.get(status_of(answer), 0) + 1
        counts[-1] = self.count - len(self.answers)  # never answered
        return counts


def timed_webhooks(url: str, count: int, secret: str) -> tuple[list[int], list[float]]:
    """Send ``count`` distinct signed Salla webhooks one after another: statuses, latencies."""
    statuses, latencies = [], []
    for n in range(count):
        body = samples.encode(samples.sample_event("customer.updated", "1234509876", str(n)))
        began = time.monotonic()
        answer = httpx.post(
            f"{url}/webhooks/salla",
            content=body,
            headers=samples.signed_headers(body, secret),
            timeout=30,
        )
        latencies.append(time.monotonic() - began)
        statuses.append(answer.status_code)
        time.sleep(0.1)
    return statuses, latencies


def figures(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    return (
        f"median {ordered[len(ordered) // 2] * 1000:.0f} ms, "
        f"p90 {ordered[int(len(ordered) * 0.9)] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )
