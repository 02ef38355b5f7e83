"""The Salla sandbox's answers, rendered once and replayed by a small asyncio server.

On a machine of two cores the sandbox itself (Flask under werkzeug's threaded
server) spends about 3 ms of CPU per points page, the same cores the worker being
measured runs on: bench/worker.py then measures the stand-in as much as the worker.
This server answers each request the sandbox was asked in advance with the sandbox's
own status, headers and body (``render``), byte for byte, after the same delay; any
other request is handed to the sandbox app itself, in a thread. So the shapes stay the
sandbox's (worker/sandbox/salla.py: the published examples), at a tenth of the CPU.
``bench/worker.py --api sandbox`` runs the sandbox itself instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Flask

POINTS_PATH = "/customers/loyalty/points"
COUNT_PATH = "/_bench/requests"
LANGUAGE = "ar"  # what both sides send, or leave out (the sandbox then answers Arabic)


@dataclass(frozen=True)
class Answer:
    status: int
    head: bytes  # status line and headers, Content-Length included, ending in a blank line
    body: bytes


Key = tuple[str, str, str, str]  # token, customer_id, page, per_page


def answer_of(status: int, reason: str, headers: Iterable[tuple[str, str]], body: bytes) -> Answer:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() != "content-length"]
    lines.append(f"Content-Length: {len(body)}")
    return Answer(status, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body)


def render(app: Flask, asked: Iterable[Key]) -> dict[Key, Answer]:
    """The sandbox's answer to each ``(token, customer_id, page, per_page)``, as it
    would send it to a client sending our User-Agent and Accept headers."""
    client = app.test_client()
    answers = {}
    for token, customer, page, per_page in asked:
        query = {"customer_id": customer, "page": page, "per_page": per_page}
        got = client.get(POINTS_PATH, query_string=query, headers=_headers(token))
        answers[token, customer, page, per_page] = answer_of(
            got.status_code, got.status.partition(" ")[2], got.headers.items(), got.get_data()
        )
    return answers


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "User-Agent": "bench",
            "Accept": "application/json", "Accept-Language": LANGUAGE}  # fmt: skip


class Replay:
    """``serve`` answers on ``port`` until the process ends; ``requests`` counts the
    points requests, as the sandbox's ``request_count`` does."""

    def __init__(self, app: Flask, answers: dict[Key, Answer], delay: float) -> None:
        self.app, self.answers, self.delay = app, answers, delay
        self.requests = 0
        self.client = app.test_client()

    def serve(self, port: int, ready: Callable[[], Any]) -> None:
        async def main() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", port, backlog=512)
            ready()
            async with server:
                await server.serve_forever()

        asyncio.run(main())

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, target, headers = _parse(head)
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                answer = await self._answer(method, target, headers, body)
                writer.write(answer.head + answer.body)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        url = urlsplit(target)
        if url.path == COUNT_PATH:
            document = b'{"requests": %d}' % self.requests
            return answer_of(200, "OK", [("Content-Type", "application/json")], document)
        if url.path == POINTS_PATH:
            self.requests += 1
        await asyncio.sleep(self.delay)
        query = dict(parse_qsl(url.query))
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = (token.strip() if scheme.lower() == "bearer" else "", query.get("customer_id", ""),
               query.get("page", ""), query.get("per_page", ""))  # fmt: skip
        known = self.answers.get(key) if method == "GET" and url.path == POINTS_PATH else None
        if known is not None and headers.get("accept-language", LANGUAGE) == LANGUAGE:
            return known
        return await asyncio.to_thread(self._sandbox, method, target, headers, body)

    def _sandbox(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """What the sandbox answers a request nobody rendered (its delay already waited)."""
        passed = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
        got = self.client.open(target, method=method, headers=passed, data=body)
        return answer_of(
            got.status_code, got.status.partition(" ")[2], got.headers.items(), got.get_data()
        )


def _parse(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target, headers
