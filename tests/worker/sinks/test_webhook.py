"""The webhook sink over real HTTP, against the capture receiver."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks.webhooks import Webhook

from worker.errors import PermanentError, TransientError
from worker.http import build_client
from worker.sandbox.capture import CapturedDelivery, CaptureLog
from worker.signing import new_secret
from worker.sinks.base import EndpointGone, OutboundDelivery, SendResult
from worker.sinks.webhook import KEPT_ANSWER_BYTES, KEPT_ANSWER_SECONDS, WebhookSink

StartCapture = Callable[..., tuple[str, CaptureLog]]
MakeSink = Callable[..., WebhookSink]
MakeDelivery = Callable[..., OutboundDelivery]


def assert_signed_for(secret: str, request: CapturedDelivery) -> None:
    """Check with the reference package, so a bug in our own signer cannot hide."""
    Webhook(secret).verify(request.body, request.headers)


def test_it_delivers_a_signed_event(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery, secret: str
) -> None:
    url, log = start_capture()
    delivery = make_delivery()

    result = make_sink(url).send(delivery)

    assert result == SendResult(200, "endpoint answered 200 OK")
    [received] = log.received()
    assert (received.id, received.type, received.data) == (
        delivery.id,
        "points.balance_changed",
        delivery.payload,
    )
    assert received.path == "/hooks/loyalty"
    assert received.headers["content-type"] == "application/json"
    assert_signed_for(secret, received)


def test_it_sends_the_standard_webhooks_body_as_compact_utf8(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    url, log = start_capture()
    riyadh = datetime(2025, 3, 1, 15, 30, 5, tzinfo=ZoneInfo("Asia/Riyadh"))
    delivery = make_delivery(payload={"tier": "ذهبي", "points": 170}, created_at=riyadh)

    make_sink(url).send(delivery)

    [received] = log.received()
    assert (
        received.body
        == (
            '{"type":"points.balance_changed","timestamp":"2025-03-01T12:30:05Z",'
            '"data":{"tier":"ذهبي","points":170}}'
        ).encode()
    )


def test_it_signs_with_every_rotated_secret(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    old, new = new_secret(), new_secret()
    old_url, old_log = start_capture(secret=old)
    new_url, new_log = start_capture(secret=new)

    make_sink(old_url, sink_secret=f"{old} {new}").send(make_delivery())
    make_sink(new_url, sink_secret=f"{old} {new}").send(make_delivery())

    assert len(old_log.received()) == len(new_log.received()) == 1
    assert_signed_for(old, old_log.received()[0])
    assert_signed_for(new, new_log.received()[0])


def test_it_keeps_the_id_and_restamps_the_time_on_each_attempt(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery, secret: str
) -> None:
    url, log = start_capture(fail_first=1)
    sink = make_sink(url)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)

    before = int(time.time())
    with pytest.raises(TransientError):
        sink.send(make_delivery(attempt=1, created_at=an_hour_ago))
    between = int(time.time())
    sink.send(make_delivery(attempt=2, created_at=an_hour_ago))
    after = int(time.time())

    first, second = log.requests()
    assert (first.status, second.status) == (503, 200)
    assert first.id == second.id == "msg_2mJ0rQ7dNnXhH5l6"
    stamps = [int(r.headers["webhook-timestamp"]) for r in (first, second)]
    assert before <= stamps[0] <= between <= stamps[1] <= after
    for request in (first, second):
        assert_signed_for(secret, request)  # a timestamp taken from created_at would be too old


def test_it_lets_the_receiver_drop_a_repeated_delivery(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    url, log = start_capture()
    sink = make_sink(url)

    sink.send(make_delivery(attempt=1))
    sink.send(make_delivery(attempt=2))  # e.g. our worker died before recording success

    assert len(log.received()) == 1
    assert [d.id for d in log.duplicates()] == ["msg_2mJ0rQ7dNnXhH5l6"]


def test_it_retries_a_503_later(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    url, log = start_capture(fail_first=1, fail_status=503, retry_after="30")

    with pytest.raises(TransientError, match="^endpoint answered 503 Service Unavailable$") as e:
        make_sink(url).send(make_delivery())

    assert e.value.retry_after == 30.0
    assert log.received() == []


def test_it_stops_on_410_gone(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    url, _ = start_capture(fail_first=1, fail_status=410)

    with pytest.raises(EndpointGone, match="410 Gone"):
        make_sink(url).send(make_delivery())


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (301, PermanentError),
        (400, PermanentError),
        (404, PermanentError),
        (408, TransientError),
        (429, TransientError),
        (500, TransientError),
        (502, TransientError),
        (504, TransientError),
    ],
)
def test_it_turns_the_receivers_status_into_a_failure(
    start_capture: StartCapture,
    make_sink: MakeSink,
    make_delivery: MakeDelivery,
    status: int,
    failure: type[Exception],
) -> None:
    url, _ = start_capture(fail_first=1, fail_status=status)

    with pytest.raises(failure, match=f"endpoint answered {status}"):
        make_sink(url).send(make_delivery())


def test_it_is_refused_by_a_receiver_with_another_secret(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    url, log = start_capture(secret=new_secret())

    with pytest.raises(PermanentError, match="401 Unauthorized"):
        make_sink(url).send(make_delivery())

    [rejected] = log.requests()
    assert (rejected.verified, rejected.status, rejected.data) == (False, 401, None)


def test_it_retries_when_the_endpoint_is_too_slow(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    url, _ = start_capture(delay=1.0)

    with (
        build_client(timeout=0.2, allow_private=True) as impatient,
        pytest.raises(TransientError, match="in time"),
    ):
        make_sink(url, client=impatient).send(make_delivery())


def test_it_retries_when_nothing_listens(make_sink: MakeSink, make_delivery: MakeDelivery) -> None:
    with pytest.raises(TransientError, match="could not reach endpoint"):
        make_sink(f"http://127.0.0.1:{_closed_port()}/hooks").send(make_delivery())


def test_it_stops_on_a_payload_that_is_not_json(
    make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    delivery = make_delivery(payload={"balance": Decimal("1.5")})

    with pytest.raises(PermanentError, match="not JSON"):
        make_sink("http://127.0.0.1:9/never-called").send(delivery)


def test_it_never_puts_the_secret_in_what_it_stores(
    start_capture: StartCapture, make_sink: MakeSink, make_delivery: MakeDelivery, secret: str
) -> None:
    url, log = start_capture(fail_first=1, fail_status=400)
    with pytest.raises(PermanentError) as caught:
        make_sink(url).send(make_delivery())

    stored: list[Any] = [str(caught.value), json.dumps(log.requests()[0].headers)]
    assert not any(secret.removeprefix("whsec_") in text for text in stored)


def _closed_port() -> int:
    """A port that was just free: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class _KeepAliveEndpoint:
    """An HTTP/1.1 endpoint that keeps connections open, answering ``answer`` bytes
    (in ``pieces``, ``pause`` seconds apart) and noting the connection of each POST."""

    def __init__(self, answer: bytes = b'{"ok":true}', pieces: int = 1, pause: float = 0.0):
        endpoint = self
        self.connections: list[tuple[str, int]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.connections.append(self.client_address)
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                size = -(-len(answer) // pieces)
                try:
                    for start in range(0, len(answer), size):
                        self.wfile.write(answer[start : start + size])
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:  # the client hung up on a long answer: as it should
                    self.close_connection = True

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/loyalty"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Callable[..., _KeepAliveEndpoint]]:
    started: list[_KeepAliveEndpoint] = []

    def start(**options: Any) -> _KeepAliveEndpoint:
        started.append(_KeepAliveEndpoint(**options))
        return started[-1]

    yield start
    for one in started:
        one.close()


def test_it_sends_an_endpoints_deliveries_over_one_connection(
    endpoint: Callable[..., _KeepAliveEndpoint], make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    """An answer left unread closes its connection: every delivery would pay a new
    TCP (and TLS) handshake, on our side and on the merchant's."""
    served = endpoint(answer=b'{"received":true,"note":"' + b"x" * 2000 + b'"}')
    sink = make_sink(served.url)

    results = [sink.send(make_delivery(id=f"msg_{n}")) for n in range(3)]

    assert [r.status_code for r in results] == [200, 200, 200]
    assert len(served.connections) == 3
    assert len(set(served.connections)) == 1


def test_it_does_not_read_a_long_answer_to_its_end(
    endpoint: Callable[..., _KeepAliveEndpoint], make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    served = endpoint(answer=b"x" * (8 * KEPT_ANSWER_BYTES), pieces=64)
    sink = make_sink(served.url)

    results = [sink.send(make_delivery(id=f"msg_{n}")) for n in range(2)]

    assert [r.status_code for r in results] == [200, 200]
    assert len(set(served.connections)) == 2  # each cut off, its connection closed


def test_it_keeps_the_status_of_an_answer_whose_body_stalls(
    endpoint: Callable[..., _KeepAliveEndpoint], make_sink: MakeSink, make_delivery: MakeDelivery
) -> None:
    served = endpoint(answer=b"x" * 80, pieces=8, pause=KEPT_ANSWER_SECONDS)
    started = time.monotonic()

    result = make_sink(served.url).send(make_delivery())

    assert result.status_code == 200
    assert time.monotonic() - started < 3 * KEPT_ANSWER_SECONDS  # not the whole trickle
