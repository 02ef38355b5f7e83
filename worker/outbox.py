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
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.errors import PermanentError, TransientError
from worker.points import CustomerContact
from worker.quota import DatabaseBudget
from worker.runtime import Runtime
from worker.sinks import get_sink
from worker.sinks.base import EndpointGone, OutboundDelivery, SendResult, StoreInfo
from worker.storage.models import CustomerPoints, Delivery, Sink, Store, utcnow
from worker.storage.upsert import rows_changed

log = logging.getLogger(__name__)

PENDING, SENDING, RETRYING = "pending", "sending", "retrying"
DELIVERED, DEAD, SKIPPED = "delivered", "dead", "skipped"
MAX_RETRY_AFTER = 3600.0
EVENT_PRIORITY = ("points.balance_changed", "points.tier_changed", "points.expiry_changed")


@dataclass(frozen=True)
class Due:
    delivery_id: str
    countdown: float = 0.0


def retry_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with equal jitter, capped; never sooner than the server asked
    (a ``Retry-After`` is honoured up to an hour even when the backoff cap is lower)."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    jittered = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return float(max(jittered, min(retry_after or 0.0, MAX_RETRY_AFTER)))


def new_delivery_id() -> str:
    return "msg_" + secrets.token_hex(12)


def event_type_for(kinds: list[str]) -> str:
    return next((kind for kind in EVENT_PRIORITY if kind in kinds), kinds[0])


def create_deliveries(
    session: Session,
    store_id: int,
    change_id: int | None,
    kinds: list[str],
    payload: dict[str, Any],
) -> list[Due]:
    sinks = session.scalars(select(Sink).where(Sink.store_id == store_id, Sink.enabled))
    due = []
    for sink in sinks:
        if not set(kinds) & set(sink.kinds):
            continue
        delivery = Delivery(
            id=new_delivery_id(),
            sink_id=sink.id,
            change_id=change_id,
            store_id=store_id,
            customer_id=payload.get("customer_id"),
            event_type=event_type_for(kinds),
            payload=payload,
            status=PENDING,
            next_attempt_at=utcnow(),
        )
        session.add(delivery)
        due.append(Due(delivery.id))
    session.flush()
    return due


def claim(session: Session, delivery_id: str) -> Delivery | None:
    now = utcnow()
    claimed = rows_changed(
        session,
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_((PENDING, RETRYING)))
        .where(Delivery.next_attempt_at <= now + timedelta(seconds=1))
        .values(status=SENDING, claimed_at=now, attempts=Delivery.attempts + 1),
    )
    return session.get(Delivery, delivery_id) if claimed else None


def deliver(runtime: Runtime, delivery_id: str) -> Due | None:
    """Send one delivery; return a later retry to enqueue, if any."""
    with runtime.transaction() as session:
        delivery = claim(session, delivery_id)
        sink = session.get(Sink, delivery.sink_id) if delivery else None
    if delivery is None:
        return None
    if sink is None or not sink.enabled:
        _record(runtime, delivery_id, SKIPPED, "sink is disabled or removed")
        return None
    try:
        result = _send(runtime, sink, delivery)
    except EndpointGone as exc:
        _record(runtime, delivery_id, DEAD, str(exc))
        _disable_sink(runtime, sink.id, f"endpoint answered 410 Gone on {delivery_id}")
        return None
    except PermanentError as exc:
        _record(runtime, delivery_id, DEAD, str(exc))
        return None
    except TransientError as exc:
        return _retry_or_bury(runtime, delivery, exc)
    _record(runtime, delivery_id, DELIVERED, result.detail, result.status_code)
    return None


def _send(runtime: Runtime, sink: Sink, delivery: Delivery) -> SendResult:
    config = runtime.cipher.open(sink.config)
    adapter = get_sink(sink.kind)(config, runtime.http, DatabaseBudget(runtime.transaction))
    return adapter.send(outbound_delivery(runtime, delivery))


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


def _retry_or_bury(runtime: Runtime, delivery: Delivery, exc: TransientError) -> Due | None:
    settings = runtime.settings
    if delivery.attempts >= settings.delivery_max_attempts:
        _record(runtime, delivery.id, DEAD, f"gave up after {delivery.attempts} attempts: {exc}")
        return None
    delay = retry_delay(
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
            )
        )
    log.info("delivery %s: %s; retry %d in %.0fs", delivery.id, exc, delivery.attempts, delay)
    return Due(delivery.id, delay)


def _disable_sink(runtime: Runtime, sink_id: int, reason: str) -> None:
    """A 410 means the receiver is gone for good (Standard Webhooks): stop sending to it."""
    with runtime.transaction() as session:
        session.execute(
            update(Sink).where(Sink.id == sink_id).values(enabled=False, disabled_reason=reason)
        )
    log.warning("sink %s disabled: %s", sink_id, reason)


def _record(
    runtime: Runtime, delivery_id: str, status: str, detail: str | None, code: int | None = None
) -> None:
    values: dict[str, Any] = {"status": status, "last_error": (detail or "")[:500] or None}
    if code is not None:
        values["last_status_code"] = code
    if status == DELIVERED:
        values["delivered_at"] = datetime.now(UTC)
        values["last_error"] = None
    with runtime.transaction() as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))
