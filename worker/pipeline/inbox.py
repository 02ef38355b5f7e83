"""The inbox: every verified webhook, stored before it is acknowledged.

``row`` is what the receiver stores (``web.ingest`` batches the INSERTs). In a
worker, ``claim_pending`` (a drain) or ``claim`` (one row, from the sweeper)
takes rows, and ``process`` turns each event into coalesced refresh jobs.

Bodies carry tokens (Salla's ``app.store.authorize``) and customers' emails and
phones, so no body is ever stored in clear: ``sealed`` encrypts it before the
INSERT (a row recorded as ignored keeps none, it is never read).

A processed body is kept, sealed, when the event named exactly one customer:
``loyalty-relay inbox replay`` re-processes it (a sink was fixed, a store
resumed), which needs the webhook as it came, and retention deletes the row
after RELAY_RETENTION_DAYS. The row then records that customer
(``customer_id``, indexed with the store), so forgetting the customer finds and
erases the body by index (``worker.privacy``) instead of decrypting every body
the store sent. Every other processed body is dropped: store events (their
tokens are single use, replaying one would restore stale credentials), privacy
requests, events naming several customers or none. Rows still to be processed,
and failed ones kept for ops, hold a body too — only ever encrypted.
"""

from __future__ import annotations

import logging
from typing import Any, TypeGuard

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from worker import customers, privacy, stores
from worker.crypto import CredentialsError
from worker.errors import BadPayload
from worker.pipeline import refresh

# What the receiver stores, kept apart for its sake; the names stay available here.
from worker.pipeline.inbox_rows import DONE as DONE
from worker.pipeline.inbox_rows import FAILED as FAILED
from worker.pipeline.inbox_rows import IGNORED as IGNORED
from worker.pipeline.inbox_rows import PENDING as PENDING
from worker.pipeline.inbox_rows import PROCESSING as PROCESSING
from worker.pipeline.inbox_rows import WAITING as WAITING
from worker.pipeline.inbox_rows import row as row
from worker.pipeline.inbox_rows import sealed as sealed
from worker.pipeline.snapshots import remember_contact, remember_contacts
from worker.platforms.base import EventPlan, Platform
from worker.runtime import Runtime
from worker.storage.models import InboxEvent, Store, detached_rows, utcnow
from worker.storage.upsert import execute, rows_changed

log = logging.getLogger(__name__)

UNKNOWN_STORE = "unknown store"
RELEASE_LIMIT = 500  # parked events one store's arrival processes at once (the sweeper, the rest)


def body_of(runtime: Runtime, event: InboxEvent) -> bytes:
    """The body as the platform sent it (``b""`` once processed and dropped)."""
    return runtime.cipher.open_bytes(event.body, "an inbox body") if event.body else b""


def claim(session: Session, inbox_id: int) -> bool:
    """Take one pending row; False when another worker has it or it is finished."""
    return 1 == rows_changed(
        session,
        update(InboxEvent)
        .where(InboxEvent.id == inbox_id, InboxEvent.status == PENDING)
        .values(status=PROCESSING, claimed_at=utcnow(), attempts=InboxEvent.attempts + 1),
    )


def claim_pending(runtime: Runtime, limit: int) -> list[int]:
    """Claim up to ``limit`` pending rows, oldest first. Drains running side by side
    skip each other's rows (``SKIP LOCKED``; SQLite serializes writers anyway).

    The pick is a materialized CTE: as an ``IN (subquery)`` PostgreSQL may run the
    subquery more than once and claim more than ``limit`` rows.
    """
    oldest = (
        select(InboxEvent.id)
        .where(InboxEvent.status == PENDING)
        .order_by(InboxEvent.received_at, InboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("oldest")
        .prefix_with("MATERIALIZED")
    )
    claim_them = (
        update(InboxEvent)
        .where(InboxEvent.id == oldest.c.id, InboxEvent.status == PENDING)
        .values(status=PROCESSING, claimed_at=utcnow(), attempts=InboxEvent.attempts + 1)
        .returning(InboxEvent.id)
        .execution_options(synchronize_session=False)
    )
    with runtime.transaction() as session:
        return sorted(session.scalars(claim_them))


def handle(runtime: Runtime, platforms: dict[str, Platform], inbox_id: int) -> list[refresh.Due]:
    """Claim and process one inbox row (unless another worker has it)."""
    with runtime.transaction() as session:
        claimed = claim(session, inbox_id)
    return process(runtime, platforms, inbox_id) if claimed else []


def process(runtime: Runtime, platforms: dict[str, Platform], inbox_id: int) -> list[refresh.Due]:
    """Process one claimed inbox row; return the refresh jobs to enqueue once committed."""
    with runtime.sessions() as session:
        event = session.get(InboxEvent, inbox_id)
        if event is not None:
            session.expunge(event)
    if not _still_mine(event):
        return []
    try:
        plan = platforms[event.platform].plan(event.event_type, body_of(runtime, event))
    except (BadPayload, CredentialsError) as exc:
        _finish(runtime, inbox_id, FAILED, str(exc))
        return []
    with runtime.transaction() as session:
        event = session.get(InboxEvent, inbox_id, with_for_update=True)
        if not _still_mine(event):
            return []
        due, reason = _apply(runtime, session, platforms, event, plan)
        _set_status(session, event, _outcome(event, reason), reason)
        registered = plan.store_update is not None and reason is None
        released = _release_parked(session, event) if registered else []
    for parked_id in released:  # the events that came while this install was processed
        due += handle(runtime, platforms, parked_id)
    return due


def process_many(
    runtime: Runtime, platforms: dict[str, Platform], inbox_ids: list[int]
) -> list[refresh.Due]:
    """Process a drain's claimed chunk, in order; return the refresh jobs to enqueue.

    Runs of events that only ask for refreshes (nearly all of them) are applied
    together: one transaction and a few set-based statements per run instead of
    a handful per event. An install or a privacy request is processed alone where
    it falls (``process``), so that what comes after it sees its effect.
    """
    due: list[refresh.Due] = []
    batch: list[tuple[int, EventPlan | str]] = []
    for inbox_id, plan in _planned(runtime, platforms, inbox_ids):
        if isinstance(plan, EventPlan) and (plan.store_update or plan.privacy):
            due += _apply_batch(runtime, platforms, batch) + process(runtime, platforms, inbox_id)
            batch = []
        else:
            batch.append((inbox_id, plan))
    return due + _apply_batch(runtime, platforms, batch)


def _planned(
    runtime: Runtime, platforms: dict[str, Platform], inbox_ids: list[int]
) -> list[tuple[int, EventPlan | str]]:
    """Each claimed row's plan, or why its body cannot be read; one SELECT for all."""
    query = (
        select(InboxEvent.id, InboxEvent.platform, InboxEvent.event_type, InboxEvent.body)
        .where(InboxEvent.id.in_(inbox_ids), InboxEvent.status == PROCESSING)
        .order_by(InboxEvent.id)
    )
    with runtime.sessions() as session:
        events = detached_rows(InboxEvent, execute(session, query))
    planned: list[tuple[int, EventPlan | str]] = []
    for event in events:
        try:
            plan: EventPlan | str = platforms[event.platform].plan(
                event.event_type, body_of(runtime, event)
            )
        except (BadPayload, CredentialsError) as exc:
            plan = str(exc)
        planned.append((event.id, plan))
    return planned


def _apply_batch(
    runtime: Runtime, platforms: dict[str, Platform], batch: list[tuple[int, EventPlan | str]]
) -> list[refresh.Due]:
    """One transaction for a run of events that only ask for refreshes. The rows are
    read and written as plain rows (``detached_rows``, ``_STATUS``), not as the session's
    objects: its statements then go on the driver's path (``upsert.execute``) and no
    flush compares a hundred objects attribute by attribute."""
    if not batch:
        return []
    plans = dict(batch)
    with runtime.transaction() as session:
        query = (
            select(InboxEvent.id, InboxEvent.platform, InboxEvent.store_ref, InboxEvent.customer_id)
            .where(InboxEvent.id.in_(plans), InboxEvent.status == PROCESSING)
            .order_by(InboxEvent.id)
            .with_for_update()
        )
        events = detached_rows(InboxEvent, execute(session, query))
        found = _stores_of(session, platforms, events)
        accepted: list[tuple[InboxEvent, Store, EventPlan]] = []
        verdicts: list[tuple[InboxEvent, str, str | None]] = []
        for event in events:
            plan = plans[event.id]
            if isinstance(plan, str):
                verdicts.append((event, FAILED, plan))
                continue
            store = found.get((platforms[event.platform].store_platform, event.store_ref))
            reason = _refusal(plan, store)
            if reason is None and store is not None:
                accepted.append((event, store, plan))
            verdicts.append((event, _outcome(event, reason), reason))
        due = _request_all(runtime, session, accepted)
        _set_statuses(session, verdicts)  # after: a status reads who the event named
        return due


def _stores_of(
    session: Session, platforms: dict[str, Platform], events: list[InboxEvent]
) -> dict[tuple[str, str | None], Store]:
    keys = {
        (platforms[event.platform].store_platform, event.store_ref)
        for event in events
        if event.store_ref is not None
    }
    if not keys:
        return {}
    query = select(*_STORE_COLUMNS).where(
        tuple_(Store.platform, Store.external_id).in_(sorted(keys))
    )
    found = detached_rows(Store, execute(session, query))
    return {(store.platform, store.external_id): store for store in found}


# What a run of events reads of their stores (``_refusal``, ``_request_all``).
_STORE_COLUMNS = (Store.id, Store.platform, Store.external_id, Store.status, Store.status_reason)


def _refusal(plan: EventPlan, store: Store | None) -> str | None:
    """Why an event that asks only for refreshes is not applied (``_apply``'s reasons)."""
    if plan.ignored_reason:
        return plan.ignored_reason
    if store is None:
        return UNKNOWN_STORE
    if store.status in stores.STOPPED and plan.customer_ids:
        return stores.stopped_reason(store)
    return None


def _request_all(
    runtime: Runtime, session: Session, accepted: list[tuple[InboxEvent, Store, EventPlan]]
) -> list[refresh.Due]:
    """The contacts and refresh jobs of every accepted event, a statement or two each."""
    refs = [ref for _, _, plan in accepted for ref in plan.customer_ids]
    stored = iter(customers.stored_refs(runtime, session, refs))
    contacts, asks = [], []
    for event, store, plan in accepted:
        named = [next(stored) for _ in plan.customer_ids]
        event.customer_id = named[0] if len(set(named)) == 1 else None  # as ``_apply`` does
        for ref, customer_id in zip(plan.customer_ids, named, strict=True):
            contact = customers.contact_for(ref, plan.contact)
            if contact is not None:
                contacts.append((store.id, customer_id, contact))
            asks.append((store.id, customer_id, plan.settle))
    due = refresh.request_many(runtime.settings, session, asks)  # before the contacts'
    remember_contacts(runtime, session, contacts)  # objects: its INSERT stays off the ORM
    return due


def _still_mine(event: InboxEvent | None) -> TypeGuard[InboxEvent]:
    """False when a privacy request erased the row (or its store) since it was claimed."""
    return event is not None and event.status == PROCESSING


def _outcome(event: InboxEvent, reason: str | None) -> str:
    if reason == UNKNOWN_STORE and event.store_ref is not None:
        return WAITING  # its store may be registered in a moment: see _release_parked
    return IGNORED if reason else DONE


def _release_parked(session: Session, event: InboxEvent) -> list[int]:
    """The store of ``event`` now exists: its parked events become pending again."""
    parked = list(
        session.scalars(
            select(InboxEvent.id)
            .where(InboxEvent.status == WAITING, InboxEvent.platform == event.platform)
            .where(InboxEvent.store_ref == event.store_ref)
            .order_by(InboxEvent.id)
            .limit(RELEASE_LIMIT)
        )
    )
    if parked:
        session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(parked), InboxEvent.status == WAITING)
            .values(status=PENDING)
        )
    return parked


def _apply(
    runtime: Runtime,
    session: Session,
    platforms: dict[str, Platform],
    event: InboxEvent,
    plan: EventPlan,
) -> tuple[list[refresh.Due], str | None]:
    if plan.ignored_reason:
        return [], plan.ignored_reason
    store_platform = platforms[event.platform].store_platform
    store = _store_for(runtime, session, store_platform, event, plan)
    if store is None:
        return [], UNKNOWN_STORE
    if plan.privacy is not None:  # honoured whatever the store's status (shop/redact)
        privacy.handle(runtime, session, platforms, store, plan.privacy, event.id)
        return [], None
    if store.status in stores.STOPPED and plan.customer_ids:
        return [], stores.stopped_reason(store)
    due = []
    stored = customers.stored_refs(runtime, session, plan.customer_ids)
    if plan.store_update is None:  # who the kept body names (see the module docstring)
        event.customer_id = stored[0] if len(set(stored)) == 1 else None
    for ref, customer_id in zip(plan.customer_ids, stored, strict=True):
        contact = customers.contact_for(ref, plan.contact)
        if contact is not None:
            remember_contact(runtime, session, store.id, customer_id, contact)
        due += refresh.request(runtime.settings, session, store.id, customer_id, plan.settle)
    return due, None


def _store_for(
    runtime: Runtime, session: Session, platform: str, event: InboxEvent, plan: EventPlan
) -> Store | None:
    if event.store_ref is None:
        return None
    existing = stores.find_store(session, platform, event.store_ref)
    if plan.store_update is None or (existing is None and not plan.store_update.credentials):
        return existing
    store = stores.save_store(runtime, session, platform, event.store_ref, plan.store_update)
    log.info("store %s updated by %s (status %s)", store.key, event.event_type, store.status)
    if store.status in stores.STOPPED:
        refresh.end_for_store(session, store.id, stores.stopped_reason(store))
    return store


def _finish(runtime: Runtime, inbox_id: int, status: str, reason: str | None) -> None:
    with runtime.transaction() as session:
        event = session.get(InboxEvent, inbox_id)
        if _still_mine(event):
            _set_status(session, event, status, reason)


def _set_statuses(session: Session, verdicts: list[tuple[InboxEvent, str, str | None]]) -> None:
    """``_set_status`` for a run's events, as plain rows: an UPDATE per kind (body kept
    or dropped), each run once with every row's values (the driver's executemany)."""
    now, kept, dropped = utcnow(), list[dict[str, Any]](), list[dict[str, Any]]()
    for event, status, reason in verdicts:
        values = {"row_id": event.id, "new_status": status, "new_reason": reason,
                  "customer": event.customer_id, "at": now}  # fmt: skip
        (dropped if _drops_body(event, status) else kept).append(values)
    connection = session.connection()
    for statement, rows in ((_STATUS, kept), (_STATUS_DROPPING_BODY, dropped)):
        if rows:
            connection.execute(statement, rows)


_STATUS = (
    update(InboxEvent)
    .where(InboxEvent.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        reason=bindparam("new_reason"),
        processed_at=bindparam("at"),
        customer_id=bindparam("customer"),
    )
)
_STATUS_DROPPING_BODY = _STATUS.values(body=b"")


def _drops_body(event: InboxEvent, status: str) -> bool:
    """A processed body nobody could find to erase (it names no one customer) and no
    replay needs is dropped."""
    return status in (DONE, IGNORED) and event.customer_id is None


def _set_status(session: Session, event: InboxEvent, status: str, reason: str | None) -> None:
    event.status, event.reason, event.processed_at = status, reason, utcnow()
    if _drops_body(event, status):
        event.body = b""
