"""Deliveries for ops: list, show (masked payload and every attempt), retry, discard.

Retry and discard are conditional UPDATEs, like every claim in the pipeline:
they move only rows in the states they name and return the ids they moved, so
running one twice moves nothing the second time, and a row a worker has
claimed meanwhile (``sending``) or finished (``delivered``, ``skipped``) is
never touched — a delivered delivery is never resent. The caller enqueues the
returned ids (the CLI rings them as the sweeper does).

A retried delivery starts a fresh round: ``attempts`` goes back to 0 so that it
gets the whole ``RELAY_DELIVERY_MAX_ATTEMPTS`` budget again (a sink fixed by
its owner may still answer one 503 on the way up). Nothing of its history is
lost: every earlier call stays a ``delivery_attempts`` row, shown in order.
Its id — the ``webhook-id`` receivers dedupe on — never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from worker.logs import scrub
from worker.ops import NotFound, OpsError, store_by_key
from worker.ops.masking import masked
from worker.ops.pages import DEFAULT_LIMIT, Keyset, Page, chosen, listing
from worker.ops.pages import partitions as combinations
from worker.pipeline.outbox import DEAD, DELIVERED, PENDING, RETRYING, SENDING, SKIPPED
from worker.storage.models import Delivery, DeliveryAttempt, Sink, Store, utcnow

STATUSES = (PENDING, SENDING, RETRYING, DELIVERED, DEAD, SKIPPED)
RETRYABLE = (DEAD, RETRYING)  # by id: a retrying row can be told to go now
DISCARDABLE = (DEAD, RETRYING, PENDING)
DISCARDED = "discarded by operator"
BULK_BATCH = 1000  # rows one bulk retry statement moves; the caller repeats until none
# ix_deliveries_status_created / ix_deliveries_sink_status_created serve every listing.
KEYSET = Keyset(Delivery.created_at, Delivery.id, str)


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    status: str
    sink_id: int
    store: str
    event_type: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None


@dataclass(frozen=True)
class AttemptRow:
    number: int
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    status_code: int | None
    duration_ms: int | None
    error: str | None


@dataclass(frozen=True)
class DeliveryDetail:
    delivery: DeliveryRow
    sink_kind: str
    customer_id: str | None
    payload: dict[str, Any]  # personal values masked
    attempts: tuple[AttemptRow, ...]


def list_deliveries(
    session: Session,
    status: str | None = None,
    sink_id: int | None = None,
    store: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[DeliveryRow]:
    """Newest first, filtered; ``next_cursor`` reads the page after this one."""
    parts = _partitions(session, status, sink_id, store)
    query = select(Delivery, Store.platform, Store.external_id).join(
        Store, Store.id == Delivery.store_id
    )
    return listing(
        session, KEYSET, parts, KEYSET.after(cursor) + _since(since), limit, query,
        lambda found: _row(found[0], f"{found[1]}:{found[2]}"),
    )  # fmt: skip


def _since(since: datetime | None) -> list[ColumnElement[bool]]:
    return [Delivery.created_at >= since] if since is not None else []


def _partitions(
    session: Session, status: str | None, sink_id: int | None, store: str | None
) -> list[tuple[ColumnElement[bool], ...]]:
    """One (status[, sink]) range of an index per combination the filters allow."""
    statuses = [Delivery.status == value for value in chosen(status, STATUSES, "delivery")]
    sinks = _sink_ids(session, sink_id, store)
    if sinks is None:
        return combinations(statuses)
    return combinations([Delivery.sink_id == value for value in sinks], statuses)


def _sink_ids(session: Session, sink_id: int | None, store: str | None) -> list[int] | None:
    """The sinks to read (a store's, or one), None for every sink."""
    if store is None:
        return None if sink_id is None else [sink_id]
    found = store_by_key(session, store)
    ids = list(session.scalars(select(Sink.id).where(Sink.store_id == found.id)))
    return [value for value in ids if sink_id is None or value == sink_id]


def _row(delivery: Delivery, store_key: str) -> DeliveryRow:
    return DeliveryRow(
        id=delivery.id,
        status=delivery.status,
        sink_id=delivery.sink_id,
        store=store_key,
        event_type=delivery.event_type,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        last_status_code=delivery.last_status_code,
        last_error=scrub(delivery.last_error) if delivery.last_error else None,
    )


def show_delivery(session: Session, delivery_id: str) -> DeliveryDetail:
    """The delivery, its payload masked, and every call made for it, oldest first."""
    found = session.execute(
        select(Delivery, Store, Sink.kind)
        .join(Store, Store.id == Delivery.store_id)
        .join(Sink, Sink.id == Delivery.sink_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if found is None:
        raise NotFound(f"no delivery {delivery_id}")
    delivery, store, kind = found
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery_id)  # ix_attempts_delivery
        .order_by(DeliveryAttempt.started_at, DeliveryAttempt.id)
    )
    return DeliveryDetail(
        delivery=_row(delivery, store.key),
        sink_kind=kind,
        customer_id=delivery.customer_id,
        payload=masked(delivery.payload),
        attempts=tuple(_attempt(row) for row in attempts),
    )


def _attempt(row: DeliveryAttempt) -> AttemptRow:
    return AttemptRow(
        number=row.number,
        outcome=row.outcome,
        started_at=row.started_at,
        finished_at=row.finished_at,
        status_code=row.status_code,
        duration_ms=row.duration_ms,
        error=scrub(row.error) if row.error else None,
    )


def retry(session: Session, ids: Sequence[str]) -> list[str]:
    """Dead and retrying rows among ``ids`` back to pending, due now; the ids moved."""
    return _retry_where(session, [Delivery.id.in_(list(ids)), Delivery.status.in_(RETRYABLE)])


def retry_matching(
    session: Session,
    status: str = DEAD,
    sink_id: int | None = None,
    since: datetime | None = None,
    batch: int = BULK_BATCH,
) -> list[str]:
    """Up to ``batch`` rows in ``status`` (dead or retrying) for the filters back to
    pending; the ids moved. Call again until it returns fewer than ``batch``."""
    if status not in RETRYABLE:
        raise OpsError(f"only {' or '.join(RETRYABLE)} deliveries can be retried")
    matching = [Delivery.status == status, *_since(since)]
    if sink_id is not None:
        matching.append(Delivery.sink_id == sink_id)
    picked = select(Delivery.id).where(*matching).order_by(Delivery.created_at).limit(batch)
    return _retry_where(session, [Delivery.id.in_(picked.scalar_subquery()), *matching])


def _retry_where(session: Session, conditions: list[ColumnElement[bool]]) -> list[str]:
    fresh_round = {"status": PENDING, "next_attempt_at": utcnow(), "attempts": 0}
    return _move(session, conditions, fresh_round)


def discard(session: Session, ids: Sequence[str]) -> list[str]:
    """Rows not sent yet (pending, retrying, dead) among ``ids`` to skipped; the ids moved."""
    not_sent = [Delivery.id.in_(list(ids)), Delivery.status.in_(DISCARDABLE)]
    return _move(session, not_sent, {"status": SKIPPED, "last_error": DISCARDED})


def _move(
    session: Session, conditions: Sequence[ColumnElement[bool]], values: dict[str, Any]
) -> list[str]:
    """One conditional UPDATE; the ids it changed."""
    moved = (
        update(Delivery)
        .where(*conditions)
        .values(deferred=False, **values)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(moved))
