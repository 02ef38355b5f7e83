"""Every task's enqueueing, through the real Redis broker, with the settings and
sink rules a merchant gets by default (debounce, settle checks, collapse window,
retry backoff): waits are kept in the rows, and the messages the dispatcher
publishes when they are over carry ids and no countdown."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import update

from tests.conftest import SALLA_SECRET, quiet_broker, relay_env
from tests.factories import (
    CUSTOMER,
    MERCHANT,
    add_salla_store,
    add_webhook_sink,
    encode,
    salla_event,
    salla_headers,
)
from tests.pipeline_support import all_rows
from web import create_app
from worker import dispatch, tasks
from worker.config import Settings, load_settings
from worker.pipeline import dispatcher, refresh
from worker.points import CHANGE_KINDS
from worker.reactions import DEFAULT_COLLAPSE_SECONDS
from worker.runtime import Runtime
from worker.sandbox.capture import create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import (
    CustomerPoints,
    Delivery,
    DeliveryAttempt,
    InboxEvent,
    RefreshJob,
    Sink,
    Store,
)

Serve = Callable[[Any], RunningServer]
DEFAULTS_OVERRIDDEN_BY_THE_SUITE = (
    "RELAY_DEBOUNCE_SECONDS",
    "RELAY_SETTLE_DELAYS",
    "RELAY_RETRY_BASE_SECONDS",
    "RELAY_RETRY_MAX_SECONDS",
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    """A merchant's defaults: the suite's shortened waits are taken out again."""
    quiet_broker(redis_url)
    env = relay_env(tmp_path, database_url, redis_url)
    for name in DEFAULTS_OVERRIDDEN_BY_THE_SUITE:
        env.pop(name)
    return load_settings(env)


@dataclasses.dataclass(frozen=True)
class Message:
    task: str
    row_id: Any
    countdown: float | None  # seconds from now to the message's eta; None: no eta


@dataclasses.dataclass
class World:
    runtime: Runtime
    broker: redis.Redis
    client: FlaskClient
    store: Store
    salla: SallaSandboxState

    def post(self, event: str = "order.status.updated", **data: Any) -> int:
        body = encode(salla_event(event, **data))
        response = self.client.post(
            "/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET)
        )
        assert response.status_code == 200, response.get_json()
        return int(response.get_json()["id"])

    def take(self, queue: str) -> list[Message]:
        """Every message waiting on ``queue``, oldest first; the queue is emptied."""
        raw = self.broker.lrange(queue, 0, -1)
        self.broker.delete(queue)
        return [_message(json.loads(item)) for item in reversed(raw)]


def _message(body: dict[str, Any]) -> Message:
    headers = body["headers"]
    args = json.loads(_decoded(body["body"]))[0]
    eta = headers.get("eta")
    countdown = None
    if eta:
        countdown = (datetime.fromisoformat(eta) - datetime.now(UTC)).total_seconds()
    return Message(headers["task"], args[0] if args else None, countdown)


def _decoded(body: str) -> str:
    return base64.b64decode(body).decode()


@pytest.fixture
def world(runtime: Runtime, serve: Serve, redis_url: str) -> Iterator[World]:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    now = datetime.now(UTC)
    salla.set_entries(
        MERCHANT, CUSTOMER, [points_entry(400, created=now, expiry=now + timedelta(days=30))]
    )
    api = serve(create_salla_sandbox(salla))
    secret = new_secret()
    sink = serve(create_capture_app(secret, fail_first=1))
    store = add_salla_store(runtime, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    with runtime.transaction() as session:  # an email sink as `sinks add-email` leaves it
        config = {"host": "127.0.0.1", "port": 1, "security": "none",
                  "from_address": "loyalty@shop.example"}  # fmt: skip
        session.add(Sink(store_id=store.id, kind="email", kinds=list(CHANGE_KINDS),
                         config=runtime.cipher.seal(config), rules={}))  # fmt: skip
        session.add(CustomerPoints(  # known with 100 points: a change, not a first sight
            store_id=store.id, customer_id=CUSTOMER, available=Decimal(100),
            pending=Decimal(0), used=Decimal(0), next_expiry_points=Decimal(0),
            fetched_at=now - timedelta(days=1),
            contact=runtime.cipher.seal({"email": "sara@example.com"}),
        ))  # fmt: skip
    broker = redis.Redis.from_url(redis_url)
    yield World(runtime, broker, create_app(runtime.settings).test_client(), store, salla)
    broker.close()


def _refreshed(world: World) -> list[str]:
    """A webhook drained and its first refresh run: the deliveries it made, by id."""
    world.post()
    assert [m.task for m in world.take("events")] == [dispatch.DRAIN_INBOX]
    assert tasks.drain_inbox() == 1
    [first] = [j.id for j in all_rows(world.runtime, RefreshJob) if j.slot == refresh.SOON]
    _make_due(world, first)
    tasks.refresh_points(first)
    return [d.id for d in all_rows(world.runtime, Delivery)]


def _make_due(world: World, job_id: int) -> None:
    """The debounce has passed."""
    with world.runtime.transaction() as session:
        session.execute(
            update(RefreshJob).where(RefreshJob.id == job_id).values(due_at=datetime.now(UTC))
        )


def _dispatched(world: World) -> list[Message]:
    """One ``relay.dispatch`` run; what it published."""
    tasks.dispatch_due()
    return [m for queue in ("refresh", "deliveries") for m in world.take(queue)]


def _kind(world: World, delivery_id: str) -> str:
    with world.runtime.sessions() as session:
        delivery = session.get_one(Delivery, delivery_id)
        return session.get_one(Sink, delivery.sink_id).kind


def _no_countdowns(world: World) -> None:
    for queue in ("events", "refresh", "deliveries"):
        for raw in world.broker.lrange(queue, 0, -1):
            assert _message(json.loads(raw)).countdown is None, raw


def test_it_keeps_the_debounce_and_settle_checks_in_rows_not_in_the_broker(world: World) -> None:
    world.post()
    world.take("events")
    tasks.drain_inbox()
    assert world.take("refresh") == [] and world.take("events") == []  # nothing due yet
    settings = world.runtime.settings
    assert settings.debounce_seconds > 0 and settings.settle_delays  # a merchant's defaults
    jobs = sorted(all_rows(world.runtime, RefreshJob), key=lambda j: j.due_at)
    waits = [(j.due_at - j.created_at).total_seconds() for j in jobs]
    assert waits == pytest.approx([settings.debounce_seconds, *settings.settle_delays])
    assert _dispatched(world) == []  # the debounce has not passed
    _make_due(world, jobs[0].id)
    assert _dispatched(world) == [Message(dispatch.REFRESH_MANY, [jobs[0].id], None)]


def test_it_handles_a_swept_event_into_the_same_refreshes(world: World) -> None:
    inbox_id = world.post()
    world.take("events")
    tasks.handle_event(inbox_id)
    assert len(all_rows(world.runtime, RefreshJob)) == 1 + len(world.runtime.settings.settle_delays)
    assert world.take("refresh") == []


def test_it_sends_each_delivery_when_its_sinks_wait_is_over(world: World) -> None:
    by_kind = {_kind(world, row_id): row_id for row_id in _refreshed(world)}
    assert set(by_kind) == {"webhook", "email"}
    # The webhook is due at once: the refresh task sends it itself, with no message at all
    # (the endpoint answers 503 to that first attempt, so it now waits for its retry).
    assert world.take("deliveries") == [] and world.take("events") == []
    [webhook] = [d for d in all_rows(world.runtime, Delivery) if d.id == by_kind["webhook"]]
    assert (webhook.status, webhook.attempts, webhook.last_status_code) == ("retrying", 1, 503)
    assert _dispatched(world) == []  # and only once
    [email] = [d for d in all_rows(world.runtime, Delivery) if d.id == by_kind["email"]]
    wait = (email.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert DEFAULT_COLLAPSE_SECONDS - 5 < wait <= DEFAULT_COLLAPSE_SECONDS  # its collapse window
    _no_countdowns(world)


def test_it_sends_a_retry_once_its_backoff_is_over(world: World) -> None:
    webhook = next(i for i in _refreshed(world) if _kind(world, i) == "webhook")
    # The refresh task sent it at once, and the endpoint answered 503 (once).
    assert world.take("deliveries") == [] and world.take("events") == []
    [row] = [d for d in all_rows(world.runtime, Delivery) if d.id == webhook]
    base = world.runtime.settings.retry_base_seconds
    wait = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert row.status == "retrying" and base / 2 - 5 < wait <= base
    assert _dispatched(world) == []
    with world.runtime.transaction() as session:
        session.get_one(Delivery, webhook).next_attempt_at = datetime.now(UTC)
    assert _dispatched(world) == [Message(dispatch.DELIVER_MANY, [webhook], None)]


def test_it_reschedules_a_refresh_the_platform_holds_in_its_row(world: World) -> None:
    world.post()
    tasks.drain_inbox()
    [first] = [j.id for j in all_rows(world.runtime, RefreshJob) if j.slot == refresh.SOON]
    world.salla.fail_next(1, status=429, retry_after=30)
    _make_due(world, first)
    tasks.refresh_points(first)
    assert world.take("refresh") == []
    [row] = [j for j in all_rows(world.runtime, RefreshJob) if j.id == first]
    wait = (row.due_at - datetime.now(UTC)).total_seconds()
    assert row.status == "retrying" and 25 < wait <= 30 + 10
    assert _dispatched(world) == []


def test_it_dispatches_a_burst_without_a_single_countdown(world: World) -> None:
    now = datetime.now(UTC)
    for n in range(20):
        entry = points_entry(50 + n, created=now, expiry=None)
        world.salla.set_entries(MERCHANT, str(3000 + n), [entry])
        world.post("order.created", id=9000 + n, customer={"id": 3000 + n})
    tasks.drain_inbox()
    for job in all_rows(world.runtime, RefreshJob):
        _make_due(world, job.id)  # first refreshes and settle checks alike
    chunks = []
    while messages := _dispatched(world):
        for message in messages:  # first refreshes first, within the store's budget
            if message.task == dispatch.REFRESH_MANY:
                chunks.append(len(message.row_id))
                tasks.refresh_many(message.row_id)  # side by side, on PostgreSQL
    assert max(chunks) == dispatcher.REFRESH_CHUNK > 1
    _no_countdowns(world)
    jobs = all_rows(world.runtime, RefreshJob)
    assert {j.status for j in jobs} == {"done"} and len(jobs) == 60
    fetched = [j for j in jobs if j.last_error != refresh.ALREADY_FETCHED]
    assert len(fetched) == 20  # one fetch per customer: it answered both settle checks


def test_it_sweeps_a_stuck_event_back_onto_its_queue(world: World) -> None:
    inbox_id = world.post()
    world.take("events")  # the drain's message is lost
    with world.runtime.transaction() as session:
        session.execute(
            update(InboxEvent).values(received_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    assert tasks.sweep() == 1
    assert world.take("events") == [Message(dispatch.HANDLE_EVENT, inbox_id, None)]


def test_a_flushed_broker_loses_no_timing(world: World) -> None:
    world.post()
    tasks.drain_inbox()
    world.broker.delete("events", "refresh", "deliveries")  # Redis flushed meanwhile
    [first] = [j.id for j in all_rows(world.runtime, RefreshJob) if j.slot == refresh.SOON]
    _make_due(world, first)  # the debounce is over: the row alone knew when
    assert _dispatched(world) == [Message(dispatch.REFRESH_MANY, [first], None)]


def test_only_the_rung_dispatch_clears_the_dispatch_bell(world: World) -> None:
    tasks.ring_dispatcher()
    tasks.ring_dispatcher()  # the bell is set: nothing more is queued
    [rung] = world.take("events")
    assert rung.task == dispatch.DISPATCH and world.broker.exists(dispatch.DISPATCH_BELL_KEY)
    tasks.dispatch_due()  # beat's tick: the rung one is still on its way
    assert world.broker.exists(dispatch.DISPATCH_BELL_KEY)
    tasks.dispatch_due(rung=True)
    assert not world.broker.exists(dispatch.DISPATCH_BELL_KEY)
    tasks.ring_dispatcher()
    assert [m.task for m in world.take("events")] == [dispatch.DISPATCH]


def test_a_refresh_killed_before_sending_leaves_its_delivery_to_the_sweeper(world: World) -> None:
    world.post()
    tasks.drain_inbox()
    [first] = [j.id for j in all_rows(world.runtime, RefreshJob) if j.slot == refresh.SOON]
    _make_due(world, first)
    # The refresh commits its snapshot and its deliveries; the worker dies before sending.
    due = refresh.run(world.runtime, tasks._platforms(), first)
    [webhook] = [d for d in all_rows(world.runtime, Delivery) if _kind(world, d.id) == "webhook"]
    assert [item.delivery_id for item in due if item.countdown <= 0] == [webhook.id]
    # Written as its first attempt's claim leaves it, so nobody else sends it meanwhile.
    assert (webhook.status, webhook.attempts) == ("sending", 1)
    assert [(a.number, a.outcome) for a in all_rows(world.runtime, DeliveryAttempt)] == [
        (1, "sending")
    ]
    assert _dispatched(world) == [] and tasks.sweep() == 0
    stale = timedelta(seconds=world.runtime.settings.stale_after_seconds + 1)
    with world.runtime.transaction() as session:  # the lease runs out
        row = session.get_one(Delivery, webhook.id)
        row.claimed_at = row.next_attempt_at = row.dispatched_at = datetime.now(UTC) - stale
    assert tasks.sweep() == 1  # an interrupted attempt: retried with the same id
    for message in world.take("deliveries") + _dispatched(world):
        for delivery_id in message.row_id:
            tasks.deliver(delivery_id)
    attempts = sorted((a.number, a.outcome) for a in all_rows(world.runtime, DeliveryAttempt))
    assert attempts == [(1, "interrupted"), (2, "retrying")]  # the endpoint's 503, once
