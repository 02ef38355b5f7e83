"""Privacy requests: forget a customer, forget a store, export what we hold.

``forget_customer`` deletes every row that names the customer — their snapshot
and encrypted contact, changes, refresh jobs, deliveries (pending or sent: each
names the customer and its payload their balance), recorded data requests —
and erases the body of any inbox row still holding one that names them: a
processed row kept for replay records its customer (``customer_id``, found
through ``ix_inbox_store_customer``); rows not processed yet are read.
``forget_store`` deletes the store and everything under it. ``export_customer``
gathers the same rows as one JSON-ready document.

A customer is named by refs as a platform gives them (an id, ``email:<address>``,
see ``worker.customers``); an address also finds the customers whose encrypted
contact holds it (every contact of the store is decrypted: requests are rare).

A refresh running while its customer is forgotten finds its job gone and drops
its result (``worker.pipeline.refresh.run``); an inbox row being processed finds its
status changed and stops (``worker.pipeline.inbox.process``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from worker import customers
from worker.crypto import CredentialsError
from worker.errors import BadPayload
from worker.platforms.base import (
    EXPORT_CUSTOMER,
    FORGET_CUSTOMER,
    FORGET_STORE,
    Platform,
    PrivacyRequest,
)
from worker.points import json_number
from worker.runtime import Runtime
from worker.storage.models import (
    CustomerPoints,
    DataRequest,
    Delivery,
    InboxEvent,
    PointsChange,
    RateBudget,
    RefreshJob,
    Sink,
    Store,
    utcnow,
)
from worker.storage.upsert import rows_changed

log = logging.getLogger(__name__)
ERASED = "erased by a privacy request"


def handle(
    runtime: Runtime,
    session: Session,
    platforms: dict[str, Platform],
    store: Store,
    request: PrivacyRequest,
    inbox_id: int,
) -> None:
    """Carry out a request an inbox event brought (``inbox_id``: that event, kept)."""
    if request.kind == FORGET_STORE:
        forget_store(runtime, session, platforms, store, keep_inbox=inbox_id)
    elif request.kind == FORGET_CUSTOMER:
        forget_customer(runtime, session, platforms, store, request.customer_refs, inbox_id)
    elif request.kind == EXPORT_CUSTOMER:
        record_data_request(runtime, session, store, request)


@dataclass(frozen=True)
class Subject:
    """Whom a request is about, as stored: ids (as given, or hashes of addresses) and
    the addresses they are known by."""

    ids: list[str]
    addresses: set[str]


def subject(runtime: Runtime, session: Session, store: Store, refs: Iterable[str]) -> Subject:
    """The stored ids these refs name: ids as given, hashes of addresses, and the
    customers whose encrypted contact holds one of the addresses — including the
    address found in the contact of a customer named by id (one person, known
    under their id and, from an event without it, under their address's hash)."""
    refs = [ref for ref in refs if ref]
    found = dict.fromkeys(customers.stored_refs(runtime, session, refs))
    addresses = {address.lower() for ref in refs if (address := customers.address_in(ref))}
    addresses |= _addresses_of(runtime, session, store, list(found))
    if addresses:
        by_address = [customers.EMAIL_PREFIX + address for address in sorted(addresses)]
        found |= dict.fromkeys(customers.stored_refs(runtime, session, by_address))
        found |= dict.fromkeys(_holding_address(runtime, session, store, addresses))
    return Subject(list(found), addresses)


def _addresses_of(runtime: Runtime, session: Session, store: Store, ids: list[str]) -> set[str]:
    query = select(CustomerPoints.contact).where(
        CustomerPoints.store_id == store.id, CustomerPoints.customer_id.in_(ids)
    )
    contacts = [runtime.cipher.open(sealed) for sealed in session.scalars(query) if sealed]
    return {str(contact["email"]).lower() for contact in contacts if contact.get("email")}


def _holding_address(
    runtime: Runtime, session: Session, store: Store, addresses: set[str]
) -> list[str]:
    query = select(CustomerPoints.customer_id, CustomerPoints.contact).where(
        CustomerPoints.store_id == store.id, CustomerPoints.contact.is_not(None)
    )
    return [
        customer_id
        for customer_id, contact in session.execute(query)
        if str(runtime.cipher.open(contact).get("email") or "").lower() in addresses
    ]


def forget_customer(
    runtime: Runtime,
    session: Session,
    platforms: dict[str, Platform],
    store: Store,
    refs: Iterable[str],
    keep_inbox: int | None = None,
) -> dict[str, int]:
    """Delete what names the customer; the number of rows affected per table."""
    named = subject(runtime, session, store, refs)
    ids = named.ids
    changes = select(PointsChange.id).where(
        PointsChange.store_id == store.id, PointsChange.customer_id.in_(ids)
    )
    counts = {
        "refresh_jobs": _delete(session, RefreshJob, RefreshJob.customer_id.in_(ids), store),
        "deliveries": _count(
            session,
            delete(Delivery).where(
                Delivery.store_id == store.id,
                or_(Delivery.customer_id.in_(ids), Delivery.change_id.in_(changes)),
            ),
        ),
        "points_changes": _delete(session, PointsChange, PointsChange.customer_id.in_(ids), store),
        "customer_points": _delete(
            session, CustomerPoints, CustomerPoints.customer_id.in_(ids), store
        ),
        "data_requests": _delete(session, DataRequest, DataRequest.customer_id.in_(ids), store),
    }
    addresses = {address.encode() for address in named.addresses}
    counts["inbox_events"] = _erase_inbox(
        runtime, session, platforms, store, set(ids), addresses, keep_inbox
    )
    log.info("store %s: a customer was forgotten (%s)", store.key, _summary(counts))
    return counts


def _delete(session: Session, model: Any, condition: Any, store: Store) -> int:
    return _count(session, delete(model).where(model.store_id == store.id, condition))


def _count(session: Session, statement: Any) -> int:
    return rows_changed(session, statement.execution_options(synchronize_session=False))


def _erase_inbox(
    runtime: Runtime,
    session: Session,
    platforms: dict[str, Platform],
    store: Store,
    ids: set[str],
    addresses: set[bytes],
    keep: int | None,
) -> int:
    """Bodies held that name the customer: kept processed ones by their recorded
    customer (an index lookup), the rest (not processed yet, failed) by reading them."""
    named = [
        event.id
        for event in _bodies_of(session, platforms, store, keep)
        if _names(runtime, session, platforms, event, ids, addresses)
    ]
    kept = select(InboxEvent.id).where(
        InboxEvent.store_ref == store.external_id,
        InboxEvent.customer_id.in_(ids),
        InboxEvent.platform.in_(_receivers(platforms, store)),
    )
    named += [event_id for event_id in session.scalars(kept) if event_id != keep]
    if not named:
        return 0
    erase = (
        update(InboxEvent)
        .where(InboxEvent.id.in_(named))
        .values(body=b"", customer_id=None, status="ignored", reason=ERASED, processed_at=utcnow())
    )
    return _count(session, erase)


def _bodies_of(
    session: Session, platforms: dict[str, Platform], store: Store, keep: int | None
) -> list[InboxEvent]:
    query = select(InboxEvent).where(
        InboxEvent.platform.in_(_receivers(platforms, store)),
        InboxEvent.store_ref == store.external_id,
        InboxEvent.customer_id.is_(None),  # kept processed bodies are found by customer
        func.length(InboxEvent.body) > 0,
    )
    if keep is not None:
        query = query.where(InboxEvent.id != keep)
    return list(session.scalars(query))


def _receivers(platforms: dict[str, Platform], store: Store) -> list[str]:
    """The receivers whose events belong to this store's platform (shopify and appstle)."""
    return [
        name for name, platform in platforms.items() if platform.store_platform == store.platform
    ]


def _names(
    runtime: Runtime,
    session: Session,
    platforms: dict[str, Platform],
    event: InboxEvent,
    ids: set[str],
    addresses: set[bytes],
) -> bool:
    """Whether the body names the customer: by what the platform reads in it, or by an
    address written anywhere in it; a body that cannot be read is judged by its text."""
    try:
        body = runtime.cipher.open_bytes(event.body, "an inbox body")
    except CredentialsError:
        return False  # nobody can read it either
    if any(address in body.lower() for address in addresses):
        return True
    try:
        plan = platforms[event.platform].plan(event.event_type, body)
    except BadPayload:
        return any(customer_id.encode() in body for customer_id in ids)
    return bool(ids & set(customers.stored_refs(runtime, session, plan.customer_ids)))


def forget_store(
    runtime: Runtime,
    session: Session,
    platforms: dict[str, Platform],
    store: Store,
    keep_inbox: int | None = None,
) -> dict[str, int]:
    """Delete the store and everything under it (``keep_inbox``: the request's own
    event, whose body is dropped once processed)."""
    events = [
        InboxEvent.platform.in_(_receivers(platforms, store)),
        InboxEvent.store_ref == store.external_id,
    ]
    if keep_inbox is not None:
        events.append(InboxEvent.id != keep_inbox)
    counts = {
        "inbox_events": _count(session, delete(InboxEvent).where(*events)),
        "refresh_jobs": _count(session, delete(RefreshJob).where(RefreshJob.store_id == store.id)),
        "deliveries": _count(session, delete(Delivery).where(Delivery.store_id == store.id)),
        "points_changes": _count(
            session, delete(PointsChange).where(PointsChange.store_id == store.id)
        ),
        "customer_points": _count(
            session, delete(CustomerPoints).where(CustomerPoints.store_id == store.id)
        ),
        "data_requests": _count(
            session, delete(DataRequest).where(DataRequest.store_id == store.id)
        ),
        "sinks": _count(session, delete(Sink).where(Sink.store_id == store.id)),
        "rate_budgets": _count(
            session, delete(RateBudget).where(RateBudget.key.like(f"store:{store.id}:%"))
        ),
        "stores": _count(session, delete(Store).where(Store.id == store.id)),
    }
    log.info("store %s forgotten (%s)", store.key, _summary(counts))
    return counts


def _summary(counts: dict[str, int]) -> str:
    return (
        ", ".join(f"{table} {count}" for table, count in counts.items() if count) or "nothing held"
    )


def record_data_request(
    runtime: Runtime, session: Session, store: Store, request: PrivacyRequest
) -> None:
    """Keep the request until the merchant exports it; the export itself is made from
    the live rows then, so no second copy of the personal data is stored meanwhile."""
    customer_id = subject(runtime, session, store, request.customer_refs).ids[0]
    session.add(
        DataRequest(store_id=store.id, customer_id=customer_id, request_ref=request.request_ref)
    )
    log.warning(
        "store %s: a customer asked for their data; export it with: "
        "loyalty-relay privacy export --store %s --customer %s",
        store.key,
        store.key,
        customer_id,
    )


def export_customer(
    runtime: Runtime, session: Session, store: Store, refs: Iterable[str]
) -> dict[str, Any]:
    """Everything stored about the customer, as JSON-ready values; marks the
    customer's recorded data requests as exported."""
    ids = subject(runtime, session, store, refs).ids
    found = [_customer_document(runtime, session, store, customer_id) for customer_id in ids]
    held = [
        entry
        for entry in found
        if any(value for key, value in entry.items() if key != "customer_id")
    ]
    document = {"store": store.key, "exported_at": _iso(utcnow()), "customers": held}
    session.execute(
        update(DataRequest)
        .where(DataRequest.store_id == store.id, DataRequest.customer_id.in_(ids))
        .where(DataRequest.exported_at.is_(None))
        .values(exported_at=utcnow())
    )
    return document


def _customer_document(
    runtime: Runtime, session: Session, store: Store, customer_id: str
) -> dict[str, Any]:
    points = session.get(CustomerPoints, (store.id, customer_id))
    return {
        "customer_id": customer_id,
        "contact": runtime.cipher.open(points.contact) if points else {},
        "points": _points(points) if points and points.fetched_at else None,
        "changes": [_change(row) for row in _rows(session, PointsChange, store, customer_id)],
        "deliveries": [_delivery(row) for row in _rows(session, Delivery, store, customer_id)],
        "refresh_jobs": [_job(row) for row in _rows(session, RefreshJob, store, customer_id)],
        "data_requests": [_request(row) for row in _rows(session, DataRequest, store, customer_id)],
    }


def _rows(session: Session, model: Any, store: Store, customer_id: str) -> list[Any]:
    query = select(model).where(model.store_id == store.id, model.customer_id == customer_id)
    return list(session.scalars(query.order_by(model.id)))


def _points(row: CustomerPoints) -> dict[str, Any]:
    return {
        "available": json_number(row.available),
        "pending": json_number(row.pending),
        "used": json_number(row.used),
        "next_expiry_at": _iso(row.next_expiry_at),
        "next_expiry_points": json_number(row.next_expiry_points),
        "tier": row.tier,
        "excluded": row.excluded,
        "fetched_at": _iso(row.fetched_at),
    }


def _change(row: PointsChange) -> dict[str, Any]:
    return {
        "kinds": row.kinds,
        "before": row.before,
        "after": row.after,
        "at": _iso(row.created_at),
    }


def _delivery(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_type": row.event_type,
        "status": row.status,
        "created_at": _iso(row.created_at),
        "delivered_at": _iso(row.delivered_at),
        "payload": row.payload,
    }


def _job(row: RefreshJob) -> dict[str, Any]:
    return {"slot": row.slot, "status": row.status, "due_at": _iso(row.due_at)}


def _request(row: DataRequest) -> dict[str, Any]:
    return {
        "request_ref": row.request_ref,
        "received_at": _iso(row.received_at),
        "exported_at": _iso(row.exported_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
