"""The sweeper: finds rows whose doorbell was lost and rings again.

Refresh jobs and deliveries are the dispatcher's (``worker.pipeline.dispatcher``),
which hands out again any row whose message went missing once its lease ends;
the sweeper puts back what a killed worker claimed and asks for a dispatch.

Runs every ``RELAY_SWEEP_INTERVAL_SECONDS`` from beat. A row counts as lost
when it has waited longer than ``RELAY_STALE_AFTER_SECONDS`` past its due time
(a flushed Redis, a message dropped on the floor), or has been claimed that
long ago without finishing (a killed worker). Claims are conditional updates,
so ringing twice for the same row is harmless. Batches are bounded so that a
backlog during a spike never turns into a flood of duplicate messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from worker import dispatch, metrics
from worker.pipeline import holding, inbox, outbox, refresh
from worker.reactions import MESSAGE_SINKS
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent, RefreshJob, Sink, Store, utcnow

BATCH = 500


@dataclass
class Swept:
    events: list[int] = field(default_factory=list)
    refreshes: list[int] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.refreshes) + len(self.deliveries)


def sweep(runtime: Runtime) -> Swept:
    cutoff = utcnow() - timedelta(seconds=runtime.settings.stale_after_seconds)
    with runtime.transaction() as session:
        swept = Swept(
            events=_events(session, cutoff, runtime.settings.store_wait_seconds),
            refreshes=_refreshes(session, cutoff),
            deliveries=_deliveries(session, cutoff),
        )
    metrics.sweeper_ran()
    return swept


def _events(session: Session, cutoff: Any, store_wait: float) -> list[int]:
    _release(session, InboxEvent, inbox.PROCESSING, inbox.PENDING, cutoff)
    query = select(InboxEvent.id).where(
        InboxEvent.status == inbox.PENDING, InboxEvent.received_at < cutoff
    )
    lost = list(session.scalars(query.order_by(InboxEvent.id).limit(BATCH)))
    return lost + _parked(session, store_wait)


def _parked(session: Session, store_wait: float) -> list[int]:
    """Events parked for a store not registered yet: pending again once the store
    exists (its install raced them, or it was added from the CLI), ignored with
    the reason once they have waited ``RELAY_STORE_WAIT_SECONDS``.

    Only platforms whose events name their own platform's stores park events
    (Salla, Shopify), so a store is matched on the event's platform."""
    given_up = utcnow() - timedelta(seconds=store_wait)
    session.execute(
        update(InboxEvent)
        .where(InboxEvent.status == inbox.WAITING, InboxEvent.received_at < given_up)
        .values(
            status=inbox.IGNORED,
            reason=f"unknown store (not registered within {store_wait:g} s)",
            processed_at=utcnow(),
            body=b"",  # ignored: the personal data it carried is not kept
        )
    )
    registered = exists().where(
        Store.platform == InboxEvent.platform, Store.external_id == InboxEvent.store_ref
    )
    parked = select(InboxEvent.id).where(InboxEvent.status == inbox.WAITING, registered)
    ids = list(session.scalars(parked.order_by(InboxEvent.id).limit(BATCH)))
    if ids:
        session.execute(
            update(InboxEvent).where(InboxEvent.id.in_(ids)).values(status=inbox.PENDING)
        )
    return ids


def _refreshes(session: Session, cutoff: Any) -> list[int]:
    _release(session, RefreshJob, refresh.WORKING, refresh.RETRYING, cutoff)
    query = select(RefreshJob.id).where(
        RefreshJob.status.in_((refresh.PENDING, refresh.RETRYING)), RefreshJob.due_at < cutoff
    )
    return list(session.scalars(query.order_by(RefreshJob.due_at).limit(BATCH)))


def _deliveries(session: Session, cutoff: Any) -> list[str]:
    _settle_abandoned_messages(session, cutoff)
    _release(session, Delivery, outbox.SENDING, outbox.RETRYING, cutoff)
    waiting = Delivery.status.in_((outbox.PENDING, outbox.RETRYING))
    lost = select(Delivery.id).where(waiting, Delivery.next_attempt_at < cutoff)
    lost_ids = list(session.scalars(lost.order_by(Delivery.next_attempt_at).limit(BATCH)))
    # Open breakers whose probe is due but whose carrier row went missing: one of each
    # sink's parked deliveries is made due now, and the dispatcher sends it as the probe.
    probes = [due.delivery_id for due in holding.due_probes(session, utcnow())]
    return lost_ids + _release_deferred(session, waiting) + probes


def _settle_abandoned_messages(session: Session, cutoff: Any) -> None:
    """A message whose worker died mid-send may have reached the person: it counts as
    sent, never resent (at most once). CRM and webhook rows are retried instead:
    their receivers set absolute values or dedupe on the delivery id."""
    messages = select(Sink.id).where(Sink.kind.in_(MESSAGE_SINKS))
    session.execute(
        update(Delivery)
        .where(Delivery.status == outbox.SENDING, Delivery.claimed_at < cutoff)
        .where(Delivery.sink_id.in_(messages))
        .values(status=outbox.DELIVERED, last_error="outcome unknown (worker stopped mid-send)")
    )


def _release_deferred(session: Session, waiting: Any) -> list[str]:
    """Rows whose wait was too long to hold in the broker (quiet hours, long backoff)."""
    due = select(Delivery.id).where(
        waiting, Delivery.deferred, Delivery.next_attempt_at <= utcnow()
    )
    ids = list(session.scalars(due.limit(BATCH)))
    if ids:
        session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(deferred=False))
    return ids


def _release(session: Session, model: Any, claimed: str, back_to: str, cutoff: Any) -> None:
    """Claims older than the cutoff belong to a dead worker: make them claimable again.

    Their due time is older than the claim, so the queries that follow pick them up.
    """
    session.execute(
        update(model)
        .where(model.status == claimed, model.claimed_at < cutoff)
        .values(status=back_to)
    )


def ring(app: Any, swept: Swept) -> None:
    """Events are rung one by one; refresh jobs and deliveries hold their due time,
    so one ``relay.dispatch`` hands them out (within each store's budget)."""
    _ring_all(app, dispatch.HANDLE_EVENT, swept.events)
    if swept.refreshes or swept.deliveries:
        dispatch.request_dispatch(app)


def _ring_all(app: Any, name: str, ids: Iterable[int | str]) -> None:
    for row_id in ids:
        dispatch.enqueue(app, name, row_id)
