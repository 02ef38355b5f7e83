"""The outbox: one row per change and sink, written with the change, sent by
``deliver``. The row id is the idempotency key (the ``webhook-id`` of signed
webhooks), stable across retries.

Delivery is claimed with a conditional update and the attempt is recorded
*before* the call; a worker killed after the call but before recording the
answer leaves the row in ``sending``, and the sweeper retries it with the same
id, so a receiver that dedupes on the id sees it once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker import backoff, metrics, reactions
from worker.errors import PermanentError, TransientError
from worker.points import CustomerContact
from worker.quota import DatabaseBudget
from worker.runtime import Runtime
from worker.sinks import UnknownSinkKind, get_sink
from worker.sinks.base import (
    EndpointGone,
    OutboundDelivery,
    RejectedResult,
    SendResult,
    SinkContext,
    SkippedResult,
    StoreInfo,
)
from worker.sinks.base import Sink as SinkAdapter
from worker.sinks.skips import AmbiguousSend, SkippedDelivery
from worker.storage.models import CustomerPoints, Delivery, Sink, Store, utcnow
from worker.storage.upsert import rows_changed

log = logging.getLogger(__name__)

PENDING, SENDING, RETRYING = "pending", "sending", "retrying"
DELIVERED, DEAD, SKIPPED = "delivered", "dead", "skipped"
MAX_COUNTDOWN = 900.0  # longer waits are not held in the broker; the sweeper releases them
CLAIM_SLACK = timedelta(seconds=1)
EVENT_PRIORITY = ("points.balance_changed", "points.tier_changed", "points.expiry_changed")


@dataclass(frozen=True)
class Due:
    delivery_id: str
    countdown: float = 0.0


def new_delivery_id() -> str:
    return "msg_" + secrets.token_hex(12)


def event_type_for(kinds: list[str]) -> str:
    return next((kind for kind in EVENT_PRIORITY if kind in kinds), kinds[0])


def create_deliveries(
    session: Session,
    store: Store,
    change_id: int | None,
    payload: dict[str, Any],
    sinks: Sequence[Sink] | None = None,
    flush: bool = True,
) -> list[Due]:
    """One outbox row per sink that wants this change (see ``worker.reactions``).

    A message sink's row waits for its collapse window and the store's quiet
    hours; a change arriving while it waits is folded into it instead. A caller
    creating many (``worker.pipeline.schedule``) passes the store's enabled ``sinks`` it
    loaded once, and flushes once for the lot.
    """
    now = utcnow()
    if sinks is None:
        sinks = list(session.scalars(select(Sink).where(Sink.store_id == store.id, Sink.enabled)))
    due = []
    for sink in sinks:
        kinds = reactions.wanted_kinds(sink.kind, sink.rules, sink.kinds, payload["kinds"], payload)
        if not kinds:
            continue
        wanted = payload | {"kinds": kinds}
        if _fold_into_held(session, sink, wanted, now):
            continue
        send_at = reactions.send_at(sink.rules, sink.kind, now, store.timezone)
        due += _add(session, sink, store.id, change_id, wanted, send_at, now)
    if flush:
        session.flush()
    return due


def _add(
    session: Session,
    sink: Sink,
    store_id: int,
    change_id: int | None,
    payload: dict[str, Any],
    send_at: datetime,
    now: datetime,
) -> list[Due]:
    countdown = (send_at - now).total_seconds()
    delivery = Delivery(
        id=new_delivery_id(),
        sink_id=sink.id,
        change_id=change_id,
        store_id=store_id,
        customer_id=payload.get("customer_id"),
        event_type=event_type_for(payload["kinds"]),
        payload=payload,
        status=PENDING,
        next_attempt_at=send_at,
        deferred=countdown > MAX_COUNTDOWN,
    )
    session.add(delivery)
    return [] if delivery.deferred else [Due(delivery.id, countdown)]


def _fold_into_held(session: Session, sink: Sink, payload: dict[str, Any], now: datetime) -> bool:
    """Merge into a message still waiting to go out; False when there is none."""
    if not reactions.collapse_seconds(sink.rules, sink.kind):
        return False
    query = (
        select(Delivery)
        .where(Delivery.sink_id == sink.id, Delivery.customer_id == payload.get("customer_id"))
        .where(Delivery.status == PENDING, Delivery.next_attempt_at > now + CLAIM_SLACK)
        .with_for_update()
    )
    held = session.scalars(query).first()
    if held is None:
        return False
    merged = reactions.merge_payloads(held.payload, payload)
    # Guarded like a claim: a row a worker is about to send is not changed under it.
    return bool(
        rows_changed(
            session,
            update(Delivery)
            .where(Delivery.id == held.id, Delivery.status == PENDING)
            .where(Delivery.next_attempt_at > now + CLAIM_SLACK)
            .values(payload=merged, event_type=event_type_for(merged["kinds"])),
        )
    )


def claim(session: Session, delivery_id: str) -> Delivery | None:
    now = utcnow()
    claimed = rows_changed(
        session,
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_((PENDING, RETRYING)))
        .where(Delivery.next_attempt_at <= now + CLAIM_SLACK)
        .values(status=SENDING, claimed_at=now, attempts=Delivery.attempts + 1),
    )
    return session.get(Delivery, delivery_id) if claimed else None


def deliver(runtime: Runtime, delivery_id: str) -> list[Due]:
    """Send one delivery (or a batch of due ones, for a sink that takes batches);
    return retries to enqueue."""
    with runtime.transaction() as session:
        delivery = claim(session, delivery_id)
        sink = session.get(Sink, delivery.sink_id) if delivery else None
    if delivery is None:
        return []
    if sink is None or not sink.enabled:
        record(runtime, delivery_id, SKIPPED, "sink is disabled or removed")
        return []
    companions = claim_companions(runtime, sink, delivery)
    if companions:
        return deliver_batch(runtime, sink, [delivery, *companions])
    return _deliver_one(runtime, sink, delivery)


def claim_companions(runtime: Runtime, sink: Sink, first: Delivery) -> list[Delivery]:
    """Other due deliveries for ``sink``, claimed for one ``send_many`` (``first`` excluded).

    Reconciliation-sized bursts (a reconciliation, a backlog after an outage) then
    go as a CRM's batch upsert instead of one call per row; the other messages for
    those rows find nothing left to claim. None for a sink that sends one at a time.
    """
    limit = _batch_limit(sink) - 1
    if limit < 1:
        return []
    waiting = Delivery.status.in_((PENDING, RETRYING))
    query = (
        select(Delivery.id)
        .where(Delivery.sink_id == sink.id, Delivery.id != first.id, waiting)
        .where(Delivery.next_attempt_at <= utcnow())
        .limit(limit)
    )
    with runtime.transaction() as session:
        claimed = [claim(session, row_id) for row_id in session.scalars(query).all()]
    return [delivery for delivery in claimed if delivery is not None]


def deliver_batch(runtime: Runtime, sink: Sink, batch: list[Delivery]) -> list[Due]:
    """Send ``batch`` (all claimed) in one ``send_many``; record each row's outcome."""
    try:
        adapter = make_sink(runtime, sink)
        results = adapter.send_many([outbound_delivery(runtime, row) for row in batch])
    except TransientError as exc:
        metrics.delivery_attempt(sink.kind, attempt_outcome(exc), len(batch))
        return [due for row in batch if (due := retry_or_bury(runtime, row, exc))]
    except PermanentError as exc:
        metrics.delivery_attempt(sink.kind, attempt_outcome(exc), len(batch))
        for row in batch:
            record(runtime, row.id, DEAD, str(exc))
        return []
    for row, result in zip(batch, results, strict=True):
        status = _result_status(result)
        record(runtime, row.id, status, result.detail, result.status_code)
        metrics.delivery_attempt(sink.kind, status, created_at=row.created_at)
    return []


def _result_status(result: SendResult) -> str:
    if isinstance(result, SkippedResult):
        return SKIPPED
    if isinstance(result, RejectedResult):
        return DEAD
    return DELIVERED


def _deliver_one(runtime: Runtime, sink: Sink, delivery: Delivery) -> list[Due]:
    delivery_id = delivery.id
    try:
        result = _send(runtime, sink, delivery)
    except SkippedDelivery as exc:
        record(runtime, delivery_id, SKIPPED, exc.reason)
        return []
    except AmbiguousSend as exc:
        # Handed over, receipt unknown: a person must never get it twice.
        record(runtime, delivery_id, DELIVERED, f"outcome unknown, not resent: {exc}")
        return []
    except EndpointGone as exc:
        record(runtime, delivery_id, DEAD, str(exc))
        _disable_sink(runtime, sink.id, f"endpoint answered 410 Gone on {delivery_id}")
        return []
    except PermanentError as exc:
        record(runtime, delivery_id, DEAD, str(exc))
        return []
    except TransientError as exc:
        later = retry_or_bury(runtime, delivery, exc)
        return [later] if later else []
    record(runtime, delivery_id, DELIVERED, None, result.status_code)
    metrics.delivery_finished(delivery.created_at)
    return []


def _send(runtime: Runtime, sink: Sink, delivery: Delivery) -> SendResult:
    with metrics.sink_call(sink.kind, attempt_outcome):
        return make_sink(runtime, sink).send(outbound_delivery(runtime, delivery))


def attempt_outcome(error: BaseException | None) -> str:
    """What one call to a sink came to, as ``relay_delivery_attempts_total`` counts it."""
    if error is None:
        return DELIVERED
    if isinstance(error, SkippedDelivery):
        return SKIPPED
    if isinstance(error, AmbiguousSend):
        return "unknown"  # recorded as delivered, never resent
    if isinstance(error, TransientError):
        return "failed"  # retried, or dead after the last attempt
    return "rejected" if isinstance(error, PermanentError) else "error"


def make_sink(runtime: Runtime, sink: Sink) -> SinkAdapter:
    """The sink adapter for a row: decrypted config, and the one context every sink gets."""
    return _adapter_class(sink)(runtime.cipher.open(sink.config), sink_context(runtime))


def sink_context(runtime: Runtime) -> SinkContext:
    """The shared HTTP client, the rate budget in the database, the settings."""
    return SinkContext(runtime.http, DatabaseBudget(runtime.transaction), runtime.settings)


def _batch_limit(sink: Sink) -> int:
    try:
        return get_sink(sink.kind).batch_limit
    except UnknownSinkKind:  # the send says why (dead, with the reason)
        return 1


def _adapter_class(sink: Sink) -> type[SinkAdapter]:
    try:
        return get_sink(sink.kind)
    except UnknownSinkKind as exc:  # a row written by a newer version, or by hand
        raise PermanentError(str(exc)) from None


def outbound_delivery(runtime: Runtime, delivery: Delivery) -> OutboundDelivery:
    """The row as a sink sees it, with the customer's contact decrypted for this attempt."""
    with runtime.sessions() as session:
        store = session.get_one(Store, delivery.store_id)
        points = (
            session.get(CustomerPoints, (delivery.store_id, delivery.customer_id))
            if delivery.customer_id
            else None
        )
    contact = runtime.cipher.open(points.contact) if points else {}
    return OutboundDelivery(
        id=delivery.id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        created_at=delivery.created_at,
        attempt=delivery.attempts,
        store=StoreInfo(store.key, store.name, store.timezone, store.locale),
        contact=CustomerContact(**contact),
        excluded=bool(points and points.excluded),
    )


def retry_or_bury(runtime: Runtime, delivery: Delivery, exc: TransientError) -> Due | None:
    settings = runtime.settings
    if delivery.attempts >= settings.delivery_max_attempts:
        record(runtime, delivery.id, DEAD, f"gave up after {delivery.attempts} attempts: {exc}")
        return None
    delay = backoff.retry_delay(
        delivery.attempts, settings.retry_base_seconds, settings.retry_max_seconds, exc.retry_after
    )
    with runtime.transaction() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.status == SENDING)
            .values(
                status=RETRYING,
                last_error=str(exc)[:500],
                next_attempt_at=utcnow() + timedelta(seconds=delay),
                deferred=delay > MAX_COUNTDOWN,
            )
        )
    log.info("delivery %s: %s; retry %d in %.0fs", delivery.id, exc, delivery.attempts, delay)
    return None if delay > MAX_COUNTDOWN else Due(delivery.id, delay)


def _disable_sink(runtime: Runtime, sink_id: int, reason: str) -> None:
    """A 410 means the receiver is gone for good (Standard Webhooks): stop sending to it."""
    with runtime.transaction() as session:
        session.execute(
            update(Sink).where(Sink.id == sink_id).values(enabled=False, disabled_reason=reason)
        )
    log.warning("sink %s disabled: %s", sink_id, reason)


def record(
    runtime: Runtime, delivery_id: str, status: str, detail: str | None, code: int | None = None
) -> None:
    values: dict[str, Any] = {"status": status, "last_error": (detail or "")[:500] or None}
    if code is not None:
        values["last_status_code"] = code
    if status == DELIVERED:
        values["delivered_at"] = datetime.now(UTC)
    with runtime.transaction() as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))
