"""Every call to a sink is a ``delivery_attempts`` row: written before the call, finished
after it, against real signed-webhook and HubSpot endpoints on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from tests.factories import add_salla_store
from tests.worker.pipeline.health_support import (
    EMAIL,
    PHONE,
    Serve,
    attempts_of,
    endpoint,
    make_due,
    payload,
    row,
)
from worker.pipeline import attempts, outbox, sweeper
from worker.pipeline.attempts import Answer
from worker.points import BALANCE_CHANGED
from worker.runtime import Runtime
from worker.sandbox.hubspot import DEMO_TOKEN, HubSpotSandboxState, create_hubspot_sandbox
from worker.sinks.crm import PROPERTIES
from worker.storage.models import CustomerPoints, Delivery, Sink, utcnow


def test_it_records_a_delivered_attempt(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    [due] = hook.queue()
    outbox.deliver(runtime, due.delivery_id)
    [attempt] = attempts_of(runtime, due.delivery_id)
    assert (attempt.number, attempt.outcome, attempt.status_code) == (1, "delivered", 200)
    assert attempt.sink_id == hook.sink_id and attempt.error is None
    assert attempt.finished_at is not None and attempt.finished_at >= attempt.started_at
    assert attempt.duration_ms is not None and attempt.duration_ms >= 0


def test_it_records_a_failure_then_the_success(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=1, fail_status=500)
    [due] = hook.queue()
    assert outbox.deliver(runtime, due.delivery_id)  # a retry to enqueue
    make_due(runtime, due.delivery_id)
    assert outbox.deliver(runtime, due.delivery_id) == []
    failed, delivered = attempts_of(runtime, due.delivery_id)
    assert (failed.number, failed.outcome, failed.status_code) == (1, "retrying", 500)
    assert failed.error == "endpoint answered 500 Internal Server Error"
    assert (delivered.number, delivered.outcome, delivered.status_code) == (2, "delivered", 200)
    assert {request.id for request in hook.log.requests()} == {due.delivery_id}


def test_it_records_the_last_attempt_of_a_dead_delivery(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=100, fail_status=503)
    [due] = hook.queue()
    last = runtime.settings.delivery_max_attempts
    for _ in range(last):
        make_due(runtime, due.delivery_id)
        outbox.deliver(runtime, due.delivery_id)
    rows = attempts_of(runtime, due.delivery_id)
    assert [a.number for a in rows] == list(range(1, last + 1))
    assert [a.outcome for a in rows] == ["retrying"] * (last - 1) + ["dead"]
    assert rows[-1].error is not None and rows[-1].error.startswith(f"gave up after {last}")
    assert row(runtime, due.delivery_id).status == "dead"
    assert len(hook.log.requests()) == last


def test_it_records_a_refusal_as_rejected(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=1, fail_status=422)
    [due] = hook.queue()
    outbox.deliver(runtime, due.delivery_id)
    [attempt] = attempts_of(runtime, due.delivery_id)
    assert (attempt.outcome, attempt.status_code) == ("rejected", 422)
    assert row(runtime, due.delivery_id).status == "dead"


def test_it_keeps_an_interrupted_attempt_as_evidence(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    [due] = hook.queue()
    with runtime.transaction() as session:
        outbox.claim(session, due.delivery_id)  # a worker took it, then was killed mid-call
    [cut_off] = attempts_of(runtime, due.delivery_id)
    assert (cut_off.outcome, cut_off.finished_at) == ("sending", None)
    stale = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, stale_after_seconds=0)
    )
    assert due.delivery_id in sweeper.sweep(stale).deliveries
    outbox.deliver(runtime, due.delivery_id)
    first, second = attempts_of(runtime, due.delivery_id)
    assert (first.number, first.outcome) == (1, "interrupted")
    assert (second.number, second.outcome) == (2, "delivered")


def test_it_records_a_skip_for_a_disabled_sink(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    [due] = hook.queue()
    with runtime.transaction() as session:
        session.get_one(Sink, hook.sink_id).enabled = False  # `sinks disable`
    outbox.deliver(runtime, due.delivery_id)
    assert row(runtime, due.delivery_id).status == "skipped"
    [attempt] = attempts_of(runtime, due.delivery_id)
    assert (attempt.outcome, attempt.error) == ("skipped", "sink is disabled or removed")
    assert hook.log.requests() == []


def test_it_writes_one_attempt_per_delivery_of_a_batch(runtime: Runtime, serve: Serve) -> None:
    state = HubSpotSandboxState()
    for spec in PROPERTIES:
        state.define_property(spec.name, spec.type)
    portal = serve(create_hubspot_sandbox(state)).url
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        config = runtime.cipher.seal({"token": DEMO_TOKEN, "api_base": portal,
                                      "create_missing": True})  # fmt: skip
        session.add(Sink(store_id=store.id, kind="hubspot", config=config, kinds=[BALANCE_CHANGED]))
        for i in range(4):
            session.add(CustomerPoints(
                store_id=store.id, customer_id=str(i), available=Decimal(i), pending=Decimal(0),
                used=Decimal(0), next_expiry_points=Decimal(0),
                contact=runtime.cipher.seal({"email": f"customer{i}@example.com"}),
            ))  # fmt: skip
    with runtime.transaction() as session:
        due = [d for i in range(4) for d in outbox.create_deliveries(
            session, store, None, payload(str(i)))]  # fmt: skip
    outbox.deliver(runtime, due[0].delivery_id)
    assert len(state.requests()) == 1  # one batch upsert
    for item in due:
        [attempt] = attempts_of(runtime, item.delivery_id)
        assert (attempt.number, attempt.outcome, attempt.status_code) == (1, "delivered", 200)


def test_it_masks_what_an_answer_quotes(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    [due] = hook.queue()
    with runtime.transaction() as session:
        delivery = outbox.claim(session, due.delivery_id)
        assert isinstance(delivery, Delivery)
    quoted = f"refused {EMAIL} / {PHONE}: Authorization: Bearer abcdef123456 at /h?token=s3cr3t"
    with runtime.transaction() as session:
        attempts.finish(session, due.delivery_id, 1, Answer("rejected", quoted, 400), utcnow())
    [attempt] = attempts_of(runtime, due.delivery_id)
    assert attempt.error is not None and attempt.error.startswith("refused [email] / [phone]")
    for secret in (EMAIL, PHONE, "abcdef123456", "s3cr3t"):
        assert secret not in attempt.error
