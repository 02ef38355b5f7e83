"""Reconciliation-sized bursts to HubSpot: when many deliveries for one HubSpot
sink are due at once (a reconciliation, a backlog after an outage), the first
worker to reach one claims up to 99 more and writes them with the batch upsert
(≤ 100 contacts a call) instead of 100 single PATCHes. The other messages for
those rows find nothing left to claim."""

from __future__ import annotations

from sqlalchemy import select

from worker import outbox
from worker.errors import PermanentError, TransientError
from worker.runtime import Runtime
from worker.sinks.crm import RejectedResult, SkippedResult
from worker.sinks.hubspot import BATCH_LIMIT, HubSpotSink, upsert_batch
from worker.storage.models import Delivery, Sink, utcnow


def claim_companions(runtime: Runtime, sink: Sink, first: Delivery) -> list[Delivery]:
    """Other due deliveries for ``sink``, claimed for this batch (``first`` excluded)."""
    waiting = Delivery.status.in_((outbox.PENDING, outbox.RETRYING))
    query = (
        select(Delivery.id)
        .where(Delivery.sink_id == sink.id, Delivery.id != first.id, waiting)
        .where(Delivery.next_attempt_at <= utcnow())
        .limit(BATCH_LIMIT - 1)
    )
    with runtime.transaction() as session:
        claimed = [outbox.claim(session, row_id) for row_id in session.scalars(query).all()]
    return [delivery for delivery in claimed if delivery is not None]


def deliver_batch(runtime: Runtime, sink: Sink, batch: list[Delivery]) -> list[outbox.Due]:
    """Send ``batch`` (all claimed) in one upsert; record each row's outcome."""
    adapter = outbox.make_sink(runtime, sink)
    assert isinstance(adapter, HubSpotSink)
    outbound = [outbox.outbound_delivery(runtime, delivery) for delivery in batch]
    try:
        results = upsert_batch(adapter, outbound)
    except TransientError as exc:
        return [due for d in batch if (due := outbox.retry_or_bury(runtime, d, exc))]
    except PermanentError as exc:
        for delivery in batch:
            outbox.record(runtime, delivery.id, outbox.DEAD, str(exc))
        return []
    for delivery, result in zip(batch, results, strict=True):
        outbox.record(runtime, delivery.id, _status(result), result.detail, result.status_code)
    return []


def _status(result: object) -> str:
    if isinstance(result, SkippedResult):
        return outbox.SKIPPED
    if isinstance(result, RejectedResult):
        return outbox.DEAD
    return outbox.DELIVERED
