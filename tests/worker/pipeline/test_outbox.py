"""Deliveries to a real signed-webhook endpoint: success, retries, dead letters."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.factories import add_salla_store, add_webhook_sink
from worker import backoff
from worker.pipeline import outbox, sweeper
from worker.points import BALANCE_CHANGED
from worker.runtime import Runtime
from worker.sandbox.capture import capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import Delivery, Sink

Serve = Callable[[Any], RunningServer]


def queue_delivery(runtime: Runtime, serve: Serve, **capture: Any) -> tuple[str, Any]:
    secret = new_secret()
    app = create_capture_app(secret, **capture)
    server = serve(app)
    store = add_salla_store(runtime)
    add_webhook_sink(runtime, store, f"{server.url}/hooks", secret)
    with runtime.transaction() as session:
        [due] = outbox.create_deliveries(session, store, None, payload())
    return due.delivery_id, capture_log(app)


def payload(**fields: Any) -> dict[str, Any]:
    return {"customer_id": "7", "kinds": [BALANCE_CHANGED], "balance_before": 0,
            "balance_after": 5} | fields  # fmt: skip


def row(runtime: Runtime, delivery_id: str) -> Delivery:
    with runtime.sessions() as session:
        return session.get_one(Delivery, delivery_id)


def test_it_delivers_a_signed_event(runtime: Runtime, serve: Serve) -> None:
    delivery_id, log = queue_delivery(runtime, serve)
    assert outbox.deliver(runtime, delivery_id) == []
    [received] = log.received()
    assert received.id == delivery_id and received.verified
    assert received.type == BALANCE_CHANGED and received.data["balance_after"] == 5
    delivered = row(runtime, delivery_id)
    assert (delivered.status, delivered.attempts, delivered.last_status_code) == (
        "delivered",
        1,
        200,
    )


def test_it_never_sends_a_delivered_row_again(runtime: Runtime, serve: Serve) -> None:
    delivery_id, log = queue_delivery(runtime, serve)
    outbox.deliver(runtime, delivery_id)
    outbox.deliver(runtime, delivery_id)  # a redelivered Celery message
    assert len(log.requests()) == 1


def test_it_retries_transient_failures_with_the_same_id(runtime: Runtime, serve: Serve) -> None:
    delivery_id, log = queue_delivery(runtime, serve, fail_first=2, fail_status=503)
    for _ in range(2):
        later = outbox.deliver(runtime, delivery_id)
        assert later and row(runtime, delivery_id).status == "retrying"
        with runtime.transaction() as session:  # skip the wait
            session.get_one(Delivery, delivery_id).next_attempt_at = row(
                runtime, delivery_id
            ).created_at
    assert outbox.deliver(runtime, delivery_id) == []
    assert {request.id for request in log.requests()} == {delivery_id}
    assert [r.status for r in log.requests()] == [503, 503, 200]
    assert row(runtime, delivery_id).status == "delivered"


def test_it_buries_a_delivery_the_endpoint_refuses(runtime: Runtime, serve: Serve) -> None:
    delivery_id, _ = queue_delivery(runtime, serve, fail_first=1, fail_status=400)
    assert outbox.deliver(runtime, delivery_id) == []
    dead = row(runtime, delivery_id)
    assert dead.status == "dead" and "400" in (dead.last_error or "")


def test_it_disables_a_sink_whose_endpoint_is_gone(runtime: Runtime, serve: Serve) -> None:
    delivery_id, _ = queue_delivery(runtime, serve, fail_first=1, fail_status=410)
    assert outbox.deliver(runtime, delivery_id) == []
    assert row(runtime, delivery_id).status == "dead"
    with runtime.sessions() as session:
        [sink] = session.scalars(select(Sink))
    assert not sink.enabled and "410" in (sink.disabled_reason or "")


def test_it_gives_up_after_the_last_attempt(runtime: Runtime, serve: Serve) -> None:
    delivery_id, _ = queue_delivery(runtime, serve, fail_first=100, fail_status=500)
    with runtime.transaction() as session:
        session.get_one(Delivery, delivery_id).attempts = runtime.settings.delivery_max_attempts - 1
    assert outbox.deliver(runtime, delivery_id) == []
    dead = row(runtime, delivery_id)
    assert dead.status == "dead" and "gave up" in (dead.last_error or "")


def test_it_only_creates_deliveries_for_subscribed_sinks(runtime: Runtime, serve: Serve) -> None:
    queue_delivery(runtime, serve)
    store = add_salla_store(runtime, "555")
    with runtime.transaction() as session:
        assert outbox.create_deliveries(session, store, None, payload()) == []
        assert len(list(session.scalars(select(Delivery)))) == 1


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_it_backs_off_exponentially_with_jitter_up_to_a_cap(attempt: int) -> None:
    delays = [
        backoff.retry_delay(attempt, 10, 3600, None, random.Random(seed)) for seed in range(50)
    ]
    ceiling = min(3600, 10 * 2 ** (attempt - 1))
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


def test_it_waits_at_least_as_long_as_the_endpoint_asked() -> None:
    assert 120 <= backoff.retry_delay(1, 10, 3600, 120) <= 150  # plus a quarter as spread
    assert 3600 <= backoff.retry_delay(1, 10, 3600, 10**9) <= 3900


def add_sink(runtime: Runtime, store: Any, kind: str, **rules: Any) -> Sink:
    with runtime.transaction() as session:
        sink = Sink(store_id=store.id, kind=kind, config=runtime.cipher.seal({}),
                    kinds=[BALANCE_CHANGED], rules=rules)  # fmt: skip
        session.add(sink)
        session.flush()
        return sink


def test_it_collapses_two_changes_for_one_customer_into_one_message(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    add_sink(runtime, store, "email", collapse_seconds=120)
    with runtime.transaction() as session:
        [first] = outbox.create_deliveries(session, store, None, payload(balance_after=50))
        later = payload(balance_before=50, balance_after=80)
        assert outbox.create_deliveries(session, store, None, later) == []
    held = row(runtime, first.delivery_id)
    assert 119 <= first.countdown <= 120
    assert (held.payload["balance_before"], held.payload["balance_after"]) == (0, 80)


def test_it_never_folds_into_a_message_that_is_due(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    add_sink(runtime, store, "email", collapse_seconds=0.5)
    with runtime.transaction() as session:
        outbox.create_deliveries(session, store, None, payload(balance_after=50))
        second = outbox.create_deliveries(session, store, None, payload(balance_after=80))
    assert len(second) == 1  # the first may already be on its way: a new message follows


def test_it_holds_messages_in_quiet_hours_and_the_sweeper_releases_them(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    local = datetime.now(ZoneInfo("Asia/Riyadh"))
    all_day = {
        "start": (local - timedelta(hours=1)).strftime("%H:%M"),
        "end": (local + timedelta(hours=2)).strftime("%H:%M"),
    }
    add_sink(runtime, store, "email", quiet_hours=all_day, collapse_seconds=0)
    add_sink(runtime, store, "webhook", quiet_hours=all_day)
    with runtime.transaction() as session:
        due = outbox.create_deliveries(session, store, None, payload())
    assert [d.countdown for d in due] == [0.0]  # only the CRM-like sink goes now
    with runtime.sessions() as session:
        held = session.scalars(select(Delivery).where(Delivery.deferred)).one()
    assert held.next_attempt_at > held.created_at + timedelta(minutes=15)
    with runtime.transaction() as session:
        session.get_one(Delivery, held.id).next_attempt_at = held.created_at
    assert held.id in sweeper.sweep(runtime).deliveries
    assert not row(runtime, held.id).deferred


def test_it_skips_sinks_whose_filters_reject_the_change(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    add_sink(runtime, store, "webhook", direction="decrease")
    add_sink(runtime, store, "webhook", min_change="10")
    with runtime.transaction() as session:
        assert outbox.create_deliveries(session, store, None, payload(balance_after=5)) == []


def test_it_never_resends_a_message_abandoned_mid_send(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    email = add_sink(runtime, store, "email", collapse_seconds=0)
    webhook = add_sink(runtime, store, "webhook")
    with runtime.transaction() as session:
        for due in outbox.create_deliveries(session, store, None, payload()):
            outbox.claim(session, due.delivery_id)  # a worker took both, then died
    stale = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, stale_after_seconds=0)
    )
    swept = sweeper.sweep(stale)
    with runtime.sessions() as session:
        states = {d.sink_id: d.status for d in session.scalars(select(Delivery))}
    assert states == {email.id: "delivered", webhook.id: "retrying"}
    assert len(swept.deliveries) == 1
