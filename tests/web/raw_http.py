"""Hand-framed HTTP/1.1 over a plain socket: what no HTTP client library lets a test send."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

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
