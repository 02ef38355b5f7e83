"""Every task's enqueueing, through the real Redis broker, with the settings and
sink rules a merchant gets by default (debounce, settle checks, collapse window,
retry backoff): the messages a task publishes carry the row id and the wait."""

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
from worker.points import CHANGE_KINDS
from worker.reactions import DEFAULT_COLLAPSE_SECONDS
from worker.runtime import Runtime
from worker.sandbox.capture import create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import CustomerPoints, Delivery, InboxEvent, RefreshJob, Sink, Store

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

    def post(self, event: str = "order.status.updated") -> int:
        body = encode(salla_event(event))
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


def _refreshed(world: World) -> list[Message]:
    """A webhook drained and its first refresh run: the deliveries it enqueued."""
    world.post()
    assert [m.task for m in world.take("events")] == [dispatch.DRAIN_INBOX]
    assert tasks.drain_inbox() == 1
    first = min(world.take("refresh"), key=lambda m: m.countdown or 0.0)
    _make_due(world, first.row_id)
    tasks.refresh_points(first.row_id)
    return world.take("deliveries")


def _make_due(world: World, job_id: int) -> None:
    """The debounce has passed (as it has when the broker hands the message over)."""
    with world.runtime.transaction() as session:
        session.execute(
            update(RefreshJob).where(RefreshJob.id == job_id).values(due_at=datetime.now(UTC))
        )


def _kind(world: World, delivery_id: str) -> str:
    with world.runtime.sessions() as session:
        delivery = session.get_one(Delivery, delivery_id)
        return session.get_one(Sink, delivery.sink_id).kind


def test_it_enqueues_a_refresh_after_the_debounce_and_the_settle_checks(world: World) -> None:
    world.post()
    tasks.drain_inbox()
    refreshes = world.take("refresh")
    assert {m.task for m in refreshes} == {dispatch.REFRESH_POINTS}
    waits = sorted(m.countdown or 0.0 for m in refreshes)
    settings = world.runtime.settings
    expected = [settings.debounce_seconds, *settings.settle_delays]
    assert len(waits) == len(expected)
    for wait, want in zip(waits, expected, strict=True):
        assert want - 5 < wait <= want
    assert sorted(m.row_id for m in refreshes) == sorted(
        j.id for j in all_rows(world.runtime, RefreshJob)
    )


def test_it_handles_a_swept_event_into_the_same_refreshes(world: World) -> None:
    inbox_id = world.post()
    world.take("events")
    tasks.handle_event(inbox_id)
    assert len(world.take("refresh")) == 1 + len(world.runtime.settings.settle_delays)


def test_it_enqueues_each_delivery_with_its_sinks_wait(world: World) -> None:
    by_kind = {_kind(world, m.row_id): m for m in _refreshed(world)}
    assert set(by_kind) == {"webhook", "email"}
    assert by_kind["webhook"].countdown is None  # a webhook goes at once
    email = by_kind["email"].countdown  # an email waits for its collapse window
    assert email is not None and DEFAULT_COLLAPSE_SECONDS - 5 < email <= DEFAULT_COLLAPSE_SECONDS


def test_it_enqueues_a_retry_after_the_backoff(world: World) -> None:
    webhook = next(m for m in _refreshed(world) if _kind(world, m.row_id) == "webhook")
    tasks.deliver(webhook.row_id)  # the endpoint answers 503 once
    [retry] = world.take("deliveries")
    base = world.runtime.settings.retry_base_seconds
    assert retry.row_id == webhook.row_id
    assert retry.countdown is not None and base / 2 - 5 < retry.countdown <= base
    [row] = [d for d in all_rows(world.runtime, Delivery) if d.id == webhook.row_id]
    assert row.status == "retrying"


def test_it_reschedules_a_refresh_the_platform_holds(world: World) -> None:
    world.post()
    tasks.drain_inbox()
    first = min(world.take("refresh"), key=lambda m: m.countdown or 0.0)
    world.salla.fail_next(1, status=429, retry_after=30)
    _make_due(world, first.row_id)
    tasks.refresh_points(first.row_id)
    [later] = world.take("refresh")
    assert later.task == dispatch.REFRESH_POINTS and later.row_id == first.row_id
    assert later.countdown is not None and 25 < later.countdown <= 30 + 10


def test_it_sweeps_a_stuck_event_back_onto_its_queue(world: World) -> None:
    inbox_id = world.post()
    world.take("events")  # the drain's message is lost
    with world.runtime.transaction() as session:
        session.execute(
            update(InboxEvent).values(received_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    assert tasks.sweep() == 1
    assert world.take("events") == [Message(dispatch.HANDLE_EVENT, inbox_id, None)]
