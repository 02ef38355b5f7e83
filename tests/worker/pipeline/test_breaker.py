"""Pausing and the circuit breaker, against a real signed-webhook endpoint on 127.0.0.1:
a paused sink's deliveries wait and go out once on resume; N consecutive failures open
the breaker, one delivery probes, a success closes it."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.worker.pipeline.health_support import (
    Endpoint,
    Serve,
    attempts_of,
    endpoint,
    make_due,
    probe_now,
    row,
)
from worker.config import load_settings
from worker.pipeline import breaker, holding, outbox
from worker.runtime import Runtime
from worker.storage.models import Delivery, Sink, utcnow

OUTBOX = "worker.pipeline.outbox"


def fail_each_once(hook: Endpoint, count: int) -> list[str]:
    """``count`` deliveries, each attempted once (the endpoint failing them all)."""
    ids = [due.delivery_id for due in hook.queue(count)]
    for delivery_id in ids:
        outbox.deliver(hook.runtime, delivery_id)
    return ids


def warnings(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    """The messages logged at WARNING or above that contain ``words``."""
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return [message for message in messages if words in message]


# --- pause and resume ------------------------------------------------------------------


def test_it_keeps_a_paused_sinks_deliveries_waiting(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    [before] = hook.queue()
    assert holding.pause_sink(runtime, hook.sink_id, "maintenance")
    assert hook.queue() == []  # a new change waits too: nothing to enqueue
    for delivery_id in hook.waiting():
        assert outbox.deliver(runtime, delivery_id) == []  # a message rung anyway
        waiting = row(runtime, delivery_id)
        assert (waiting.status, waiting.attempts) == ("pending", 0)
        assert attempts_of(runtime, delivery_id) == []
    assert len(hook.waiting()) == 2 and before.delivery_id in hook.waiting()
    assert hook.log.requests() == []


def test_it_sends_each_waiting_delivery_once_on_resume(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    hook.queue()
    holding.pause_sink(runtime, hook.sink_id, None)
    hook.queue()
    waiting = hook.waiting()
    released = holding.resume_sink(runtime, hook.sink_id)
    assert released is not None and sorted(d.delivery_id for d in released) == sorted(waiting)
    for due in released + released:  # a message delivered twice by the broker
        outbox.deliver(runtime, due.delivery_id)
    assert sorted(d.id for d in hook.log.received()) == sorted(waiting)
    assert hook.log.duplicates() == [] and len(hook.log.requests()) == 2
    assert {row(runtime, delivery_id).status for delivery_id in waiting} == {"delivered"}


def test_it_pauses_and_resumes_idempotently(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    assert holding.pause_sink(runtime, hook.sink_id, "first")
    assert not holding.pause_sink(runtime, hook.sink_id, "again")
    assert hook.sink().paused_reason == "first"
    assert holding.resume_sink(runtime, hook.sink_id) == []
    assert holding.resume_sink(runtime, hook.sink_id) is None
    assert not hook.sink().paused


def test_it_still_skips_a_disabled_sinks_deliveries(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve)
    [due] = hook.queue()
    with runtime.transaction() as session:
        session.get_one(Sink, hook.sink_id).enabled = False
    assert outbox.deliver(runtime, due.delivery_id) == []
    assert row(runtime, due.delivery_id).status == "skipped"
    assert hook.log.requests() == []


# --- the circuit breaker ---------------------------------------------------------------


def test_it_opens_after_ten_failures_probes_once_and_closes(
    runtime: Runtime, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    assert runtime.settings.breaker_failures == 10  # the default
    hook = endpoint(runtime, serve, fail_first=10, fail_status=500)
    caplog.set_level(logging.INFO, OUTBOX)
    ids = fail_each_once(hook, 9)
    assert not hook.sink().paused  # nine are not ten
    ids += fail_each_once(hook, 1)
    sink = hook.sink()
    assert (sink.paused, sink.paused_by, sink.consecutive_failures) == (True, "breaker", 10)
    assert sink.paused_reason == "endpoint answered 500 Internal Server Error"
    [opened] = warnings(caplog, "circuit breaker")
    assert f"sink {hook.sink_id} " in opened and hook.store.key in opened
    assert "tok_live" not in opened
    # All wait; the oldest carries the probe, due at the probe's time.
    carrier = row(runtime, ids[0])
    assert carrier.next_attempt_at == sink.probe_at
    assert all(row(runtime, i).next_attempt_at == holding.PARKED_AT for i in ids[1:])
    assert outbox.deliver(runtime, ids[1]) == [] and len(hook.log.requests()) == 10
    probe_now(runtime, hook.sink_id)
    make_due(runtime, ids[0])
    released = outbox.deliver(runtime, ids[0])  # the probe: the endpoint works again
    sink = hook.sink()
    assert (sink.paused, sink.paused_by, sink.consecutive_failures) == (False, None, 0)
    assert sorted(d.delivery_id for d in released) == sorted(ids[1:])
    for due in released:
        outbox.deliver(runtime, due.delivery_id)
    assert sorted(d.id for d in hook.log.received()) == sorted(ids)
    assert len(hook.log.requests()) == 20 and hook.log.duplicates() == []
    assert len(warnings(caplog, "circuit breaker")) == 1


def test_it_lets_one_worker_take_a_probe(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=100, fail_status=503)
    fail_each_once(hook, 10)
    probe_now(runtime, hook.sink_id)
    threshold = runtime.settings.breaker_failures
    first_view, second_view = hook.sink(), hook.sink()  # two workers both see it due
    with runtime.transaction() as session:
        assert breaker.claim_probe(session, first_view, utcnow(), threshold) is not None
    with runtime.transaction() as session:
        assert breaker.claim_probe(session, second_view, utcnow(), threshold) is None


def test_it_pushes_the_probe_out_when_it_fails(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=100, fail_status=503)
    ids = fail_each_once(hook, 10)
    probe_now(runtime, hook.sink_id)
    make_due(runtime, ids[0])
    [next_carrier] = outbox.deliver(runtime, ids[0])
    sink = hook.sink()
    assert sink.paused_by == "breaker" and sink.consecutive_failures == 11
    assert sink.probe_at is not None and sink.probe_at > utcnow()
    assert next_carrier.countdown > 0
    assert row(runtime, next_carrier.delivery_id).next_attempt_at == sink.probe_at
    assert len(hook.log.requests()) == 11  # one probe, the others waited


def test_it_does_not_count_rate_limits(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=12, fail_status=429, retry_after="1")
    ids = fail_each_once(hook, 12)
    sink = hook.sink()
    assert (sink.paused, sink.consecutive_failures) == (False, 0)
    assert sink.last_failure_at is not None
    assert {row(runtime, i).status for i in ids} == {"retrying"}


def test_it_stays_shut_when_turned_off(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=12, fail_status=500)
    off = dataclasses.replace(runtime, settings=dataclasses.replace(runtime.settings,
                                                                   breaker_failures=0))  # fmt: skip
    fail_each_once(dataclasses.replace(hook, runtime=off), 12)
    sink = hook.sink()
    assert (sink.paused, sink.consecutive_failures) == (False, 12)


def test_due_probes_finds_a_breaker_whose_carrier_was_lost(runtime: Runtime, serve: Serve) -> None:
    hook = endpoint(runtime, serve, fail_first=10, fail_status=500)
    ids = fail_each_once(hook, 10)
    with runtime.transaction() as session:
        session.delete(session.get_one(Delivery, ids[0]))  # the carrier is gone
    probe_now(runtime, hook.sink_id)
    with runtime.transaction() as session:
        [due] = holding.due_probes(session, utcnow())
    assert (due.delivery_id, due.countdown) == (ids[1], 0)
    released = outbox.deliver(runtime, due.delivery_id)
    assert not hook.sink().paused and len(released) == 8


def merchant_runtime(runtime: Runtime, tmp_path: Path) -> Runtime:
    """The runtime with a merchant's settings: every window and limit at its default."""
    env = {"DATABASE_URL": runtime.settings.database_url, "RELAY_SECRET_KEY": TEST_SECRET_KEY,
           "RELAY_DATA_DIR": str(tmp_path), "RELAY_ALLOW_PRIVATE_URLS": "1"}  # fmt: skip
    return dataclasses.replace(runtime, settings=load_settings(env))


def test_it_works_with_a_merchants_defaults(
    runtime: Runtime, serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = merchant_runtime(runtime, tmp_path)
    hook = dataclasses.replace(
        endpoint(relay, serve, fail_first=10, fail_status=502), runtime=relay
    )
    [due] = hook.queue()
    caplog.set_level(logging.INFO, OUTBOX)
    retries = [outbox.deliver(relay, due.delivery_id)]
    while row(relay, due.delivery_id).status == "retrying":
        make_due(relay, due.delivery_id)
        retries.append(outbox.deliver(relay, due.delivery_id))
    assert 5 <= retries[0][0].countdown <= 10  # RELAY_RETRY_BASE_SECONDS=10, equal jitter
    dead = row(relay, due.delivery_id)
    assert (dead.status, dead.attempts) == ("dead", 10)  # RELAY_DELIVERY_MAX_ATTEMPTS=10
    sink = hook.sink()
    assert (sink.paused_by, sink.consecutive_failures) == ("breaker", 10)
    assert sink.probe_at is not None and sink.paused_at is not None
    assert (sink.probe_at - sink.paused_at).total_seconds() == breaker.PROBE_BASE_SECONDS
    [dead_line] = warnings(caplog, "is dead")
    assert due.delivery_id in dead_line and hook.store.key in dead_line
    assert f"sink {hook.sink_id}" in dead_line and "after 10 attempts" in dead_line
    assert hook.queue() == []  # a new change waits for the probe
    probe_now(relay, hook.sink_id)
    with relay.transaction() as session:
        [probe] = holding.due_probes(session, utcnow())
    assert outbox.deliver(relay, probe.delivery_id) == []
    assert not hook.sink().paused and row(relay, probe.delivery_id).status == "delivered"
    assert len(warnings(caplog, "circuit breaker")) == 1 and len(warnings(caplog, "is dead")) == 1
