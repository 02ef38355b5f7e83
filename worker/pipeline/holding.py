"""Deliveries held for a paused sink: parked, one of them the breaker's probe, released.

A paused sink's waiting deliveries keep their status (``pending``/``retrying``)
and their attempts: nothing is claimed, skipped or used up. They are *parked*:
due at ``PARKED_AT``, far in the future, so that no claim, batch or sweep finds
them — a paused sink with a long backlog must not fill every sweep with rows
that cannot go, hiding the rows of healthy sinks that were really lost. While
the breaker is open, one of them (the oldest) is due at the probe's time
instead: the *carrier*, rung like any delivery (a countdown, or the sweeper's
release of deferred rows), and the outbox sends it as the probe. On resume, or
when a probe closes the breaker, every parked delivery is due again, at once
(or when the sink's quiet hours end) and is returned to be enqueued.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker import reactions
from worker.pipeline import breaker
from worker.pipeline.states import MAX_COUNTDOWN, WAITING, Due
from worker.runtime import Runtime
from worker.storage.models import Delivery, Sink, Store, utcnow
from worker.storage.upsert import rows_changed

PARKED_AT = datetime(2999, 1, 1, tzinfo=UTC)
RELEASE_LIMIT = 1000  # Due returned at once; the sweeper finds the rest (they are due)


def park(session: Session, *where: Any) -> int:
    """Park the waiting deliveries matching ``where``; how many were parked."""
    statement = update(Delivery).where(Delivery.status.in_(WAITING), *where)
    statement = statement.where(Delivery.next_attempt_at < PARKED_AT)
    return rows_changed(session, statement.values(next_attempt_at=PARKED_AT, deferred=True))


def hold(session: Session, sink_id: int, probe_at: datetime, now: datetime) -> list[Due]:
    """Park the sink's waiting deliveries and make the oldest the carrier of the probe
    at ``probe_at``; its ``Due`` when that is near enough to hold in the broker."""
    park(session, Delivery.sink_id == sink_id)
    oldest = select(Delivery.id).where(Delivery.sink_id == sink_id, Delivery.status.in_(WAITING))
    carrier = session.scalars(oldest.order_by(Delivery.created_at).limit(1)).first()
    if carrier is None:
        return []
    countdown = max((probe_at - now).total_seconds(), 0.0)
    deferred = countdown > MAX_COUNTDOWN
    session.execute(
        update(Delivery)
        .where(Delivery.id == carrier)
        .values(next_attempt_at=probe_at, deferred=deferred)
    )
    return [] if deferred else [Due(carrier, countdown)]


def release(session: Session, sink: Sink, now: datetime) -> list[Due]:
    """Make the sink's parked deliveries due now (a message sink's after its quiet hours)."""
    store = session.get_one(Store, sink.store_id)
    send_at = reactions.send_at(sink.rules, sink.kind, now, store.timezone)
    countdown = max((send_at - now).total_seconds(), 0.0)
    deferred = countdown > MAX_COUNTDOWN
    statement = (
        update(Delivery)
        .where(Delivery.sink_id == sink.id, Delivery.status.in_(WAITING))
        .where(Delivery.next_attempt_at >= PARKED_AT)
        .values(next_attempt_at=send_at, deferred=deferred)
        .returning(Delivery.id)
    )
    released = list(session.scalars(statement, execution_options={"synchronize_session": False}))
    return [] if deferred else [Due(row_id, countdown) for row_id in released[:RELEASE_LIMIT]]


def due_probes(session: Session, now: datetime) -> list[Due]:
    """For the sweeper: for each open breaker whose probe is due, one waiting delivery made
    due now (the others stay parked); the outbox sends it as the probe.

    Probes are otherwise driven by the outbox itself (a carrier due at ``probe_at``);
    this finds the breakers whose carrier was lost (its message, or the row itself)."""
    due = []
    for sink in breaker.due_probe_sinks(session, now):
        due += hold(session, sink.id, now, now)
    return due


def pause_sink(runtime: Runtime, sink_id: int, reason: str | None) -> bool:
    """An operator's pause: its deliveries wait. False when it already was paused so."""
    with runtime.transaction() as session:
        if not breaker.pause(session, sink_id, breaker.OPERATOR, reason, utcnow()):
            return False
        park(session, Delivery.sink_id == sink_id)
    return True


def resume_sink(runtime: Runtime, sink_id: int) -> list[Due] | None:
    """Unpause (closing an open breaker too); the released deliveries to enqueue, or
    None when it was not paused."""
    with runtime.transaction() as session:
        sink = session.get(Sink, sink_id)
        if sink is None or not breaker.resume(session, sink_id):
            return None
        return release(session, sink, utcnow())
