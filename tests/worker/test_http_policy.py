"""The outbound URL policy with its default (no ``RELAY_ALLOW_PRIVATE_URLS``):
https only, public addresses only, checked at configuration and on every connection.

The targets are real: a capture server and Redis listen on 127.0.0.1, and each
refused request must leave them untouched.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.factories import CUSTOMER, MERCHANT, add_salla_store, add_webhook_sink
from worker.errors import PermanentError
from worker.http import build_client
from worker.pipeline import outbox, refresh
from worker.platforms import build_platforms
from worker.points import BALANCE_CHANGED, CustomerContact
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.sinks.base import OutboundDelivery, SinkContext, StoreInfo
from worker.sinks.webhook import WebhookSink
from worker.storage.models import Delivery, RefreshJob
from worker.url_policy import DestinationRefused, check_url, ip_literal, refusal

REFUSED_URLS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://127.0.0.1:6379/",
    "https://10.1.2.3/hook",
    "https://192.168.1.10/hook",
    "https://0x7f000001/hook",
    "https://2130706433/hook",
    "https://127.1/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[fe80::1]/hook",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://100.64.0.1/hook",
    "https://localhost/hook",
    "http://93.184.215.14/hook",
]


@pytest.fixture
def strict() -> Iterator[httpx.Client]:
    with build_client(timeout=2.0) as client:
        yield client


@pytest.fixture
def capture(serve: Callable[..., RunningServer]) -> tuple[str, CaptureLog]:
    app = create_capture_app(new_secret())
    return serve(app).url, capture_log(app)


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_it_refuses_a_configured_url_in_one_readable_line(url: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        check_url(url, allow_private=False)
    message = str(refused.value)
    assert "\n" not in message and "/hook" not in message and "meta-data" not in message


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_it_refuses_the_connection_itself(strict: httpx.Client, url: str) -> None:
    with pytest.raises(DestinationRefused):
        strict.post(url, content=b"{}")


def test_it_never_reaches_a_local_server_by_address_or_by_name(
    strict: httpx.Client, capture: tuple[str, CaptureLog]
) -> None:
    url, log = capture
    port = httpx.URL(url).port
    for target in (f"https://127.0.0.1:{port}/", f"https://localhost:{port}/", url + "/hooks/x"):
        with pytest.raises(DestinationRefused):
            strict.post(target, content=b"{}")
    assert log.requests() == []


def test_it_never_opens_a_socket_to_a_refused_address() -> None:
    """A bare TCP listener (what Redis on 127.0.0.1:6379 is to an SSRF) sees no connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        with build_client(timeout=2.0) as strict, pytest.raises(DestinationRefused):
            strict.post(f"https://127.0.0.1:{port}/", content=b"SET k v\r\n")
        with pytest.raises(TimeoutError):
            listener.accept()


def test_it_gives_the_worker_a_permanent_error(capture: tuple[str, CaptureLog]) -> None:
    """A sink pointed at a private address fails for good (the row goes dead), no retries."""
    url, log = capture
    url, secret = url + "/hooks/loyalty", new_secret()
    with build_client(timeout=2.0) as strict:
        sink = WebhookSink({"url": url, "secret": secret}, SinkContext(strict))
        with pytest.raises(PermanentError, match="only https"):
            sink.send(_delivery())
        https = url.replace("http://", "https://")
        sink = WebhookSink({"url": https, "secret": secret}, SinkContext(strict))
        with pytest.raises(PermanentError, match="loopback"):
            sink.send(_delivery())
    assert log.requests() == []


def test_it_lets_local_development_reach_local_servers(capture: tuple[str, CaptureLog]) -> None:
    url, log = capture
    check_url(url + "/hooks/loyalty", allow_private=True)
    with build_client(timeout=2.0, allow_private=True) as relaxed:
        relaxed.post(url + "/hooks/loyalty", content=b"{}")
    assert len(log.requests()) == 1


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_it_accepts_public_addresses(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
    host = f"[{address}]" if ":" in address else address
    assert check_url(f"https://{host}/hook", allow_private=False)


def test_it_reads_every_ipv4_spelling_a_resolver_accepts() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    for spelling in ("0x7f000001", "2130706433", "127.1", "0177.0.0.1", "[127.0.0.1]"):
        assert ip_literal(spelling) == loopback
    assert ip_literal("example.com") is None and ip_literal("deadbeef.example") is None


def _delivery() -> OutboundDelivery:
    return OutboundDelivery(
        id="msg_policy",
        event_type="points.balance_changed",
        payload={"points": 1},
        created_at=datetime.now(UTC),
        attempt=1,
        store=StoreInfo("salla:1", "Store", "Asia/Riyadh", "ar"),
        contact=CustomerContact(),
    )


def strict_runtime(runtime: Runtime) -> Runtime:
    """The runtime as production has it: no allowance for private URLs."""
    settings = dataclasses.replace(runtime.settings, allow_private_urls=False)
    return dataclasses.replace(runtime, settings=settings)


def test_a_delivery_to_a_private_address_goes_dead_with_the_reason(
    runtime: Runtime, serve: Callable[..., RunningServer]
) -> None:
    """A sink stored before the policy (or by hand) is refused when the worker connects."""
    secret = new_secret()
    app = create_capture_app(secret)
    url = serve(app).url.replace("http://", "https://") + "/hooks"
    store = add_salla_store(runtime)
    add_webhook_sink(runtime, store, url, secret)
    with runtime.transaction() as session:
        payload = {"customer_id": "7", "kinds": [BALANCE_CHANGED], "balance_after": 5}
        [due] = outbox.create_deliveries(session, store, None, payload)
    assert outbox.deliver(strict_runtime(runtime), due.delivery_id) == []
    with runtime.sessions() as session:
        delivery = session.get_one(Delivery, due.delivery_id)
    assert delivery.status == "dead" and "loopback" in (delivery.last_error or "")
    assert capture_log(app).requests() == []


def test_a_refresh_against_a_private_api_base_fails_with_the_reason(
    runtime: Runtime, serve: Callable[..., RunningServer]
) -> None:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    sandbox = serve(create_salla_sandbox(salla))
    store = add_salla_store(runtime, api_base=sandbox.url.replace("http://", "https://"))
    with runtime.transaction() as session:
        [due] = refresh.request(runtime.settings, session, store.id, CUSTOMER, False)
    strict = strict_runtime(runtime)
    assert refresh.run(strict, build_platforms(strict.settings), due.job_id) == []
    with runtime.sessions() as session:
        job = session.get_one(RefreshJob, due.job_id)
    assert job.status == "failed" and "loopback" in (job.last_error or "")
    assert salla.requests() == []
