"""The whole service with a real Celery worker (and beat) on real Redis and
PostgreSQL: a webhook in, a signed update out — and nothing lost or doubled
when a worker is killed mid-task or Redis is flushed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from tests.conftest import SALLA_SECRET, SESSION_KEY, quiet_broker, relay_env, truncate
from tests.factories import CUSTOMER, MERCHANT, add_salla_store, add_webhook_sink
from web import create_app
from worker import runtime as runtime_module
from worker.config import load_settings
from worker.platforms.salla import samples
from worker.points import CHANGE_KINDS
from worker.reactions import DEFAULT_COLLAPSE_SECONDS
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.salla import SallaSandboxState, create_salla_sandbox, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.migrate import upgrade
from worker.storage.models import CustomerPoints, Delivery, RefreshJob, Sink, Store, utcnow

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
WAIT = 45.0


class Service:
    """Receiver over HTTP in this process; Celery worker + beat as a child process."""

    def __init__(self, env: dict[str, str], runtime: Runtime, receiver: RunningServer) -> None:
        self.env, self.runtime, self.receiver = env, runtime, receiver
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--beat",
            "--queues", "events,refresh,deliveries", "--concurrency", "2",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.worker = subprocess.Popen(
            command, env=os.environ | self.env, cwd=ROOT, start_new_session=True
        )

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)
        self.worker = None

    def stop_worker(self) -> None:
        if self.worker is not None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_worker()
            self.worker = None

    def post(self, event: str = "order.status.updated", customer: str = CUSTOMER) -> int:
        body = samples.encode(samples.sample_event(event, MERCHANT, customer))
        response = httpx.post(
            f"{self.receiver.url}/webhooks/salla",
            content=body,
            headers=samples.signed_headers(body, SALLA_SECRET),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return int(response.json()["id"])

    def rows(self, model: Any) -> list[Any]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(model)))


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def salla() -> SallaSandboxState:
    state = SallaSandboxState()
    state.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    now = utcnow()
    state.set_entries(
        MERCHANT, CUSTOMER, [points_entry(400, created=now, expiry=now + timedelta(days=30))]
    )
    return state


@pytest.fixture
def sink_secret() -> str:
    return new_secret()


@pytest.fixture
def capture(sink_secret: str) -> Any:
    return create_capture_app(sink_secret)


@pytest.fixture
def service_overrides() -> dict[str, str | None]:
    """Shortened waits so that the sweeper's recovery shows within seconds (None: the default)."""
    return {"RELAY_STALE_AFTER_SECONDS": "3", "RELAY_SWEEP_INTERVAL_SECONDS": "1"}


@pytest.fixture
def service(
    service_overrides: dict[str, str | None],
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    salla: SallaSandboxState,
    capture: Any,
    sink_secret: str,
    serve: Callable[[Any], RunningServer],
) -> Iterator[Service]:
    quiet_broker(redis_url)
    api = serve(create_salla_sandbox(salla))
    sink = serve(capture)
    env = relay_env(
        tmp_path,
        postgres_url,
        redis_url,
        SALLA_OAUTH_TOKEN_URL=f"{api.url}/oauth2/token",
        SALLA_CLIENT_ID=salla.client_id,
        SALLA_CLIENT_SECRET=salla.client_secret,
    )
    for name, value in service_overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    runtime = runtime_module.configure(load_settings(env))
    upgrade(runtime.engine)
    store = add_salla_store(runtime, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", sink_secret)
    receiver = serve(create_app(load_settings(env)))
    running = Service(env, runtime_module.current(), receiver)
    yield running
    running.stop_worker()
    truncate(running.runtime)
    runtime_module.configure_none()


def test_a_webhook_becomes_a_signed_update(service: Service, capture: Any) -> None:
    service.start_worker()
    service.post()
    log: CaptureLog = capture_log(capture)
    [received] = wait_until(log.received, "a delivery at the sink")
    assert received.verified and received.data["balance_after"] == 400
    wait_until(lambda: [d.status for d in service.rows(Delivery)] == ["delivered"], "delivered")


def test_a_worker_killed_mid_refresh_loses_and_doubles_nothing(
    service: Service, capture: Any, salla: SallaSandboxState
) -> None:
    salla.set_delay(4.0)  # the platform is slow: the kill lands inside the fetch
    service.start_worker()
    service.post()
    wait_until(lambda: [j.status for j in service.rows(RefreshJob)] == ["working"], "a claim")
    service.kill_worker()
    salla.set_delay(0.0)
    service.start_worker()
    log: CaptureLog = capture_log(capture)
    wait_until(log.received, "a delivery after the restart")
    wait_until(lambda: [j.status for j in service.rows(RefreshJob)] == ["done"], "job done")
    time.sleep(2)
    assert len(log.received()) == 1 and len(service.rows(Delivery)) == 1


def test_a_worker_killed_mid_delivery_delivers_once(service: Service, capture: Any) -> None:
    log: CaptureLog = capture_log(capture)
    log.delay = 4.0  # the endpoint is slow: the kill lands while the request is in flight
    service.start_worker()
    service.post()
    wait_until(lambda: [d.status for d in service.rows(Delivery)] == ["sending"], "a send")
    service.kill_worker()
    log.delay = 0.0
    service.start_worker()
    wait_until(lambda: [d.status for d in service.rows(Delivery)] == ["delivered"], "delivered")
    [received] = log.received()  # the receiver saw one webhook-id, however often it came
    assert received.id == service.rows(Delivery)[0].id


def test_a_flushed_redis_loses_nothing(service: Service, capture: Any, redis_url: str) -> None:
    service.post()  # stored and enqueued, but no worker is running
    flushed = redis.Redis.from_url(redis_url)
    flushed.flushdb()
    flushed.set(SESSION_KEY, os.getpid(), ex=3600)  # still this session's database
    service.start_worker()
    log: CaptureLog = capture_log(capture)
    wait_until(log.received, "the sweeper to recover the event")
    assert len(log.received()) == 1


class SlowMailbox:
    """Takes the message, then sits on its answer: the worker is killed meanwhile."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.delay = 6.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.content)
        await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok"


def test_a_worker_killed_mid_email_never_sends_it_twice(service: Service) -> None:
    mailbox = SlowMailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        _add_email_sink(service, smtp.port, rules={"collapse_seconds": 0})
        service.start_worker()
        service.post()  # 100 → 400 points: one email
        wait_until(lambda: mailbox.received, "the message to reach the SMTP server")
        service.kill_worker()
        mailbox.delay = 0.0
        service.start_worker()
        wait_until(lambda: _email_row(service).status == "delivered", "the sweeper to settle it")
        time.sleep(3)
        assert len(mailbox.received) == 1
        assert "outcome unknown" in (_email_row(service).last_error or "")
    finally:
        service.stop_worker()  # its kept SMTP session hangs up before the server stops
        smtp.stop()


class Mailbox:
    """Takes every message and notes when it came."""

    def __init__(self) -> None:
        self.received: list[tuple[float, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((time.monotonic(), list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok"


MERCHANT_DEFAULTS: dict[str, str | None] = dict.fromkeys(
    ("RELAY_DEBOUNCE_SECONDS", "RELAY_SETTLE_DELAYS", "RELAY_RETRY_BASE_SECONDS",
     "RELAY_RETRY_MAX_SECONDS"),
)  # fmt: skip


@pytest.mark.parametrize("service_overrides", [MERCHANT_DEFAULTS])
def test_an_email_goes_out_once_when_its_collapse_window_ends(service: Service) -> None:
    """A merchant's defaults throughout: debounce, settle checks, a 60 s collapse
    window and the sweeper's 300 s stale window (which must not be what sends it)."""
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        _add_email_sink(service, smtp.port, rules={})
        service.start_worker()
        posted = time.monotonic()
        service.post()  # 100 → 400 points: one email, after the window
        debounce = service.runtime.settings.debounce_seconds
        window = DEFAULT_COLLAPSE_SECONDS + debounce + 10
        wait_until(lambda: mailbox.received, "the email within its window", timeout=window)
        [(arrived, recipients)] = mailbox.received
        assert arrived - posted >= DEFAULT_COLLAPSE_SECONDS - 1  # it waited for later changes
        time.sleep(3)
        assert len(mailbox.received) == 1 and len(recipients) == 1
        assert _email_row(service).status == "delivered"
    finally:
        service.stop_worker()  # its kept SMTP session hangs up before the server stops
        smtp.stop()


def _add_email_sink(service: Service, port: int, rules: dict[str, Any]) -> None:
    [store] = service.rows(Store)
    with service.runtime.transaction() as session:
        config = {"host": "127.0.0.1", "port": port, "security": "none",
                  "from_address": "loyalty@shop.example", "timeout": 30}  # fmt: skip
        session.add(Sink(store_id=store.id, kind="email", kinds=list(CHANGE_KINDS),
                         config=service.runtime.cipher.seal(config), rules=rules))  # fmt: skip
        session.add(CustomerPoints(
            store_id=store.id, customer_id=CUSTOMER, available=Decimal(100),
            pending=Decimal(0), used=Decimal(0), next_expiry_points=Decimal(0),
            fetched_at=utcnow() - timedelta(days=1),
            contact=service.runtime.cipher.seal({"email": "sara@example.com"}),
        ))  # fmt: skip


def _email_row(service: Service) -> Delivery:
    with service.runtime.sessions() as session:
        query = select(Delivery).join(Sink).where(Sink.kind == "email")
        return session.scalars(query).one()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_worker_serves_the_counts_of_its_prefork_processes(
    service: Service, capture: Any, tmp_path: Path
) -> None:
    port = _free_port()
    service.env |= {"RELAY_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    service.start_worker()
    service.post()
    wait_until(lambda: [d.status for d in service.rows(Delivery)] == ["delivered"], "delivered")

    def scraped() -> dict[str, float] | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        found = {
            sample.name + str(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return found if found.get("relay_sweeper_last_run_timestamp_seconds[]") else None

    found = wait_until(scraped, "the worker's metrics with a sweep")
    assert (
        found["relay_delivery_attempts_total[('outcome', 'delivered'), ('sink_kind', 'webhook')]"]
        == 1
    )
    assert found["relay_platform_requests_total[('platform', 'salla'), ('status', '200')]"] >= 1
    per_store = [name for name in found if name.startswith("relay_store_api_requests_total[")]
    assert per_store == [
        "relay_store_api_requests_total[('status', '2xx'), ('store', 'salla:1234509876')]"
    ], per_store
    assert found["relay_refresh_seconds_count[]"] == 1
    assert found["relay_refresh_seconds_bucket[('le', '+Inf')]"] == 1
    assert found["relay_delivery_seconds_count[]"] == 1
    assert found["relay_delivery_seconds_bucket[('le', '3600.0')]"] == 1
    assert found["relay_worker_last_task_timestamp_seconds[]"] > time.time() - 60
