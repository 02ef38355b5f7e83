"""Storing a fresh snapshot: diff against the stored one and, on a change,
write the snapshot, the change and one outbox row per subscribed sink in one
transaction. Events are triggers, not truth: nothing here trusts a payload."""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from worker.pipeline import outbox
from worker.points import CustomerContact, PointsSnapshot, change_kinds, change_payload
from worker.runtime import Runtime
from worker.storage import plain
from worker.storage.models import CustomerPoints, PointsChange, Sink, Store, detached, utcnow
from worker.storage.upsert import execute, holds_objects, insert_ignore, insert_ignore_many

log = logging.getLogger(__name__)


def apply_snapshot(
    runtime: Runtime, session: Session, store: Store, customer_id: str, snapshot: PointsSnapshot
) -> list[outbox.Due]:
    """Record ``snapshot``; the deliveries it created. Those due now come back
    ``outbox.Taken``, the caller's to send once this transaction commits
    (``outbox.send_taken``)."""
    row = _locked_values(session, store.id, customer_id)
    known = runtime.cipher.open(row.contact)  # opened once: for ``before`` and the merge
    before = snapshot_of(runtime, row, known) if row.fetched_at else None
    assert snapshot.fetched_at is not None
    if before and before.fetched_at and before.fetched_at > snapshot.fetched_at:
        log.info("store %s customer %s: older fetch discarded", store.key, customer_id)
        return []
    kinds = change_kinds(before, snapshot)
    if not kinds:
        _write(runtime, session, row, known, snapshot)
        return []
    payload = change_payload(
        platform=store.platform,
        store=store.key,
        customer_id=customer_id,
        kinds=kinds,
        before=before,
        after=snapshot,
        timezone=store.timezone,
    ) | {"first_seen": before is None}
    change = {
        "store_id": store.id, "customer_id": customer_id, "kinds": kinds,
        "before": payload["before"], "after": payload["after"], "created_at": utcnow(),
    }  # fmt: skip
    if session.get_bind().dialect.name == "postgresql" and not holds_objects(session):
        contact, change_id, sinks = _write_change_read_sinks(
            runtime, session, row, known, snapshot, change
        )
    else:
        contact = _write(runtime, session, row, known, snapshot)
        change_id = execute(session, _ADD_CHANGE, change).scalar_one()
        sinks = None
    recipient = outbox.Recipient(
        outbox.store_info(store), CustomerContact(**contact), snapshot.excluded
    )
    return outbox.create_deliveries(
        session, store, change_id, payload, sinks=sinks, recipient=recipient
    )


def _write_change_read_sinks(
    runtime: Runtime,
    session: Session,
    row: Row[Any],
    known: dict[str, Any],
    snapshot: PointsSnapshot,
    change: dict[str, Any],
) -> tuple[dict[str, Any], int | None, list[Sink]]:
    """PostgreSQL: ``_write``, ``_ADD_CHANGE`` and ``outbox.enabled_sinks`` in one
    statement — the snapshot's UPDATE and the change's INSERT as data-modifying CTEs
    of the SELECT of the store's enabled sinks, each row of which carries the change's
    id. Three round trips of the snapshot's transaction become one. A store with no
    enabled sink gets no row back, and then needs no change id either."""
    contact, values = _written(runtime, row, known, snapshot)
    params = {"store": row.store_id, "customer": row.customer_id}
    params |= {f"p_{name}": value for name, value in values.items()}
    params |= {f"c_{name}": value for name, value in change.items()}
    found = execute(session, _WRITE_CHANGE_SINKS, params).all()
    sinks = [detached(Sink, {c.name: r._mapping[c.name] for c in _SINKS.c}) for r in found]
    return contact, (found[0]._mapping["change_id"] if found else None), sinks


# The refresh's own statements on plain rows (no ORM objects): each costs about half.
_POINTS = cast(Table, CustomerPoints.__table__)
_CHANGES = cast(Table, PointsChange.__table__)
_ADD_CHANGE = insert(_CHANGES).returning(_CHANGES.c.id)


def _locked_values(session: Session, store_id: int, customer_id: str) -> Row[Any]:
    """The customer's row, locked (inserted empty first when missing, as ``_locked_row``)."""
    key = {"store": store_id, "customer": customer_id}
    row = execute(session, _LOCKED_POINTS, key).one_or_none()
    if row is not None:
        return row
    insert_ignore(session, CustomerPoints, _empty_row(store_id, customer_id))
    return execute(session, _LOCKED_POINTS, key).one()


_POINTS_KEY = (
    _POINTS.c.store_id == bindparam("store"),
    _POINTS.c.customer_id == bindparam("customer"),
)
_LOCKED_POINTS = plain.hot(select(_POINTS).where(*_POINTS_KEY).with_for_update())
_WRITE_POINTS = update(_POINTS).where(*_POINTS_KEY)


def remember_contact(
    runtime: Runtime, session: Session, store_id: int, customer_id: str, contact: CustomerContact
) -> None:
    """Keep what an event says about reaching the customer, without a snapshot yet."""
    row = _locked_row(session, store_id, customer_id)
    _keep_contact(runtime, row, contact)


def remember_contacts(
    runtime: Runtime, session: Session, contacts: list[tuple[int, str, CustomerContact]]
) -> None:
    """``remember_contact`` for a drained chunk: one INSERT for the rows not there
    yet, one locking SELECT (in key order, as every lock on these rows is taken),
    and the changed rows written back together at flush."""
    if not contacts:
        return
    keys = sorted({(store_id, customer_id) for store_id, customer_id, _ in contacts})
    insert_ignore_many(session, CustomerPoints, [_empty_row(*key) for key in keys])
    query = (
        select(CustomerPoints)
        .where(tuple_(CustomerPoints.store_id, CustomerPoints.customer_id).in_(keys))
        .order_by(CustomerPoints.store_id, CustomerPoints.customer_id)
        .with_for_update()
    )
    rows = {(row.store_id, row.customer_id): row for row in session.scalars(query)}
    for store_id, customer_id, contact in contacts:
        _keep_contact(runtime, rows[store_id, customer_id], contact)


def _keep_contact(runtime: Runtime, row: CustomerPoints, contact: CustomerContact) -> None:
    """Merge what the event says into the row's contact; a contact it leaves as it was
    is not sealed again, so a customer's every later order writes nothing here."""
    _, sealed = _sealed_merge(runtime, row.contact, runtime.cipher.open(row.contact), contact)
    if sealed is not row.contact:
        row.contact = sealed


def _sealed_merge(
    runtime: Runtime, sealed: bytes | None, known: dict[str, Any], contact: CustomerContact
) -> tuple[dict[str, Any], bytes]:
    """The contact merged with what the platform says now, and its sealed bytes: the
    stored ones when nothing changed, so an unchanged contact costs no encryption and
    keeps its bytes (a customer's every later order writes nothing to it)."""
    merged = known | _fresh(contact)
    if merged == known and sealed:
        return known, sealed
    return merged, runtime.cipher.seal(merged)


def _fresh(contact: CustomerContact) -> dict[str, Any]:
    # vars, not dataclasses.asdict: its deep copy costs more than the rest of the merge.
    return {key: value for key, value in vars(contact).items() if value}


def _locked_row(session: Session, store_id: int, customer_id: str) -> CustomerPoints:
    # A missing row is inserted empty first so that concurrent refreshes of one
    # customer serialise on its row lock instead of racing on the first insert.
    query = (
        select(CustomerPoints)
        .where(CustomerPoints.store_id == store_id, CustomerPoints.customer_id == customer_id)
        .with_for_update()
    )
    row = session.scalars(query).one_or_none()  # nearly always there: the event's contact
    if row is not None:
        return row
    insert_ignore(session, CustomerPoints, _empty_row(store_id, customer_id))
    return session.scalars(query).one()


def _empty_row(store_id: int, customer_id: str) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "customer_id": customer_id,
        "available": 0,
        "pending": 0,
        "used": 0,
        "next_expiry_points": 0,
        "fetched_at": None,
    }


def snapshot_of(
    runtime: Runtime, row: CustomerPoints | Row[Any], contact: dict[str, Any] | None = None
) -> PointsSnapshot:
    """The row as a snapshot; ``contact`` is its contact already opened, if it was."""
    contact = runtime.cipher.open(row.contact) if contact is None else contact
    return PointsSnapshot(
        available=row.available,
        pending=row.pending,
        used=row.used,
        next_expiry_at=row.next_expiry_at,
        next_expiry_points=row.next_expiry_points,
        tier=row.tier,
        contact=CustomerContact(**contact),
        excluded=row.excluded,
        fetched_at=row.fetched_at,
    )


def _write(
    runtime: Runtime,
    session: Session,
    row: Row[Any],
    known: dict[str, Any],
    snapshot: PointsSnapshot,
) -> dict[str, Any]:
    """Store ``snapshot`` on the row; the customer's contact as now kept (decrypted)."""
    contact, values = _written(runtime, row, known, snapshot)
    key = {"store": row.store_id, "customer": row.customer_id}
    execute(session, _WRITE_POINTS, key | values)
    return contact


def _written(
    runtime: Runtime, row: Row[Any], known: dict[str, Any], snapshot: PointsSnapshot
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The customer's contact as now kept (decrypted; ``known`` is the row's), and the
    row's new values."""
    contact, sealed = _sealed_merge(runtime, row.contact, known, snapshot.contact)
    values = {
        "available": snapshot.available, "pending": snapshot.pending, "used": snapshot.used,
        "next_expiry_at": snapshot.next_expiry_at,
        "next_expiry_points": snapshot.next_expiry_points, "tier": snapshot.tier,
        "excluded": snapshot.excluded, "fetched_at": snapshot.fetched_at,
        "contact": sealed,
    }  # fmt: skip
    return contact, values


_WRITTEN = ("available", "pending", "used", "next_expiry_at", "next_expiry_points", "tier",
            "excluded", "fetched_at", "contact")  # fmt: skip
_SINKS = cast(Table, Sink.__table__)
_CHANGE_COLUMNS = ("store_id", "customer_id", "kinds", "before", "after", "created_at")
_ADDED_CHANGE = (
    insert(_CHANGES)
    .values({name: bindparam(f"c_{name}") for name in _CHANGE_COLUMNS})
    .returning(_CHANGES.c.id)
    .cte("added_change")
)
_WRITE_CHANGE_SINKS = plain.hot(
    select(*_SINKS.c, select(_ADDED_CHANGE.c.id).scalar_subquery().label("change_id"))
    .where(_SINKS.c.store_id == bindparam("store"), _SINKS.c.enabled)
    .add_cte(
        update(_POINTS)
        .where(*_POINTS_KEY)
        .values({name: bindparam(f"p_{name}") for name in _WRITTEN})
        .cte("written_points")
    )
)
