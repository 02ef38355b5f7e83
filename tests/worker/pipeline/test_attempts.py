"""Every call to a sink is a ``delivery_attempts`` row: written before the call, finished
after it, against real signed-webhook and HubSpot endpoints on 127.0.0.1."""

from __future__ import annotations

import dataclasses

from tests.factories import add_salla_store
from tests.worker.pipeline.health_support import (
    EMAIL,
    PHONE,
    Serve,
    add_customer,
    attempts_of,
    endpoint,
    hubspot_burst,
    make_due,
    row,
)
from tests.worker.sinks.test_crm import balance_change
from tests.worker.sinks.test_email import RefusingRecipients, StartSmtp, start_smtp
from worker.ops import deliveries as ops_deliveries
from worker.pipeline import attempts, outbox, sweeper
from worker.pipeline.attempts import Answer
from worker.points import BALANCE_CHANGED
from worker.runtime import Runtime
from worker.storage.models import Delivery, Sink, utcnow

__all__ = ["start_smtp"]  # a fixture


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
    portal, due = hubspot_burst(runtime, serve, 4)
    outbox.deliver(runtime, due[0].delivery_id)
    assert len(portal.requests()) == 1  # one batch upsert
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


def test_it_keeps_the_smtp_reply_code(runtime: Runtime, start_smtp: StartSmtp) -> None:
    port = start_smtp(RefusingRecipients(550))
    store = add_salla_store(runtime)
    config = {"host": "127.0.0.1", "port": port, "security": "none",
              "from_address": "points@rayhan.example", "timeout": 5}  # fmt: skip
    change = balance_change(email=EMAIL)
    with runtime.transaction() as session:
        session.add(Sink(store_id=store.id, kind="email", config=runtime.cipher.seal(config),
                         kinds=[BALANCE_CHANGED], rules={"collapse_seconds": 0}))  # fmt: skip
    add_customer(runtime, store.id, change.payload["customer_id"], EMAIL)
    with runtime.transaction() as session:
        [due] = outbox.create_deliveries(session, store, None, change.payload)
    outbox.deliver(runtime, due.delivery_id)
    [attempt] = attempts_of(runtime, due.delivery_id)
    assert (attempt.outcome, attempt.status_code) == ("rejected", 550)
    assert attempt.error is not None and "SMTP server answered 550" in attempt.error
    assert EMAIL not in attempt.error


def test_it_keeps_the_first_round_when_ops_retry_a_dead_delivery(
    runtime: Runtime, serve: Serve
) -> None:
    hook = endpoint(runtime, serve, fail_first=1, fail_status=400)
    [due] = hook.queue()
    outbox.deliver(runtime, due.delivery_id)  # refused: dead
    with runtime.transaction() as session:
        assert ops_deliveries.retry(session, [due.delivery_id]) == [due.delivery_id]
    outbox.deliver(runtime, due.delivery_id)  # numbers start again at 1
    first, second = attempts_of(runtime, due.delivery_id)
    assert (first.number, first.outcome, first.status_code) == (1, "rejected", 400)
    assert (second.number, second.outcome, second.status_code) == (1, "delivered", 200)
