"""The receiver's edge under gunicorn, over loopback sockets: body framing, the
body deadline, and legitimate webhooks served while thousands of slow clients
hold connections open."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import SALLA_SECRET
from tests.factories import add_salla_store, encode, salla_event
from tests.web.conftest import Served
from tests.web.raw_http import (
    SlowClients,
    address,
    chunked,
    exchange,
    figures,
    request,
    signed_salla,
    status_of,
    timed_webhooks,
)
from worker.runtime import Runtime

# Production is gevent on PostgreSQL; the embedded default is threads on SQLite.
WORKER_CLASSES = pytest.mark.parametrize(
    ("database_url", "worker_class"),
    [("postgresql", "gevent"), ("sqlite", "gthread")],
    indirect=["database_url"],
)


@pytest.fixture
def receiver(
    serve_gunicorn: Callable[..., Served], runtime: Runtime, worker_class: str
) -> Iterator[Served]:
    add_salla_store(runtime)
    yield serve_gunicorn(RELAY_WEB_WORKER_CLASS=worker_class, RELAY_BODY_TIMEOUT_SECONDS="2")


def signed_body(**data: object) -> bytes:
    return encode(salla_event("customer.updated", id=1257881496, **data))


@pytest.mark.slow
@WORKER_CLASSES
@pytest.mark.parametrize(
    "framing",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",  # not a hexadecimal size
        b"-1\r\n{}\r\n0\r\n\r\n",
        b"2\r\n{}XX0\r\n\r\n",  # no CRLF after the chunk
        b"2;\x01\r\n{}\r\n0\r\n\r\n",  # a control character in an extension
        b"2\r\n{}\r\n0\r\nX-Trailer\r\n\r\n",  # a trailer that is no header
    ],
)
def test_it_answers_400_for_a_bad_chunk(receiver: Served, framing: bytes) -> None:
    url, log = receiver
    raw = request("/webhooks/salla", {"Transfer-Encoding": "chunked"}, framing)
    assert exchange(url, raw) == 400
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
@WORKER_CLASSES
def test_it_answers_413_for_a_chunked_body_over_the_limit(receiver: Served) -> None:
    url, _ = receiver
    body = signed_body(blob="x" * (256 * 1024))
    headers = {"Transfer-Encoding": "chunked", **signed_salla(body, SALLA_SECRET)}
    assert exchange(url, request("/webhooks/salla", headers, chunked(body))) == 413
    small = signed_body()
    headers = {"Transfer-Encoding": "chunked", **signed_salla(small, SALLA_SECRET)}
    assert exchange(url, request("/webhooks/salla", headers, chunked(small, 7))) == 200


@pytest.mark.slow
@WORKER_CLASSES
def test_it_answers_408_to_a_body_that_trickles_past_its_deadline(receiver: Served) -> None:
    url, _ = receiver
    with socket.create_connection(address(url), timeout=30) as connection:
        connection.sendall(request("/webhooks/salla", {"Content-Length": "100000"}, b"{"))
        connection.settimeout(0.5)
        answer = b""
        for _ in range(60):  # a byte every half second; the deadline is 2 s
            try:
                answer = connection.recv(4096)
                break
            except TimeoutError:
                connection.sendall(b" ")
    assert status_of(answer) == 408


@pytest.mark.slow
@WORKER_CLASSES
def test_a_double_slash_is_not_redirected(receiver: Served) -> None:
    url, _ = receiver
    body = signed_body()
    headers = {"Content-Length": str(len(body)), **signed_salla(body, SALLA_SECRET)}
    # Werkzeug reads leading slashes as one; slashes inside the path are no route.
    assert exchange(url, request("//webhooks/salla", headers, body)) == 200
    assert exchange(url, request("/webhooks//salla", headers, body)) == 404
    assert exchange(url, request("/webhooks/salla//x", headers, body)) == 404


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_signed_webhooks_are_answered_while_2100_slow_clients_hold_connections(
    served: Served, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    # The production configuration and the default 10 s body deadline.
    url, log = served
    add_salla_store(runtime)
    with SlowClients(url, 2100).held() as slow:
        started = time.monotonic()
        statuses, latencies = timed_webhooks(url, 40, SALLA_SECRET)
        held_for = time.monotonic() - started
        answered = slow.collect_answers(within=20)
    assert statuses == [200] * 40
    assert answered.get(408, 0) + answered.get(None, 0) == 2100  # every slow body cut
    with capsys.disabled():
        sys.stdout.write(
            f"\ngunicorn, 2100 slow clients held {held_for:.1f} s: 40 signed webhooks "
            f"answered, {figures(latencies)}; slow clients answered {answered}\n"
        )
    assert "Traceback" not in log.read_text()
