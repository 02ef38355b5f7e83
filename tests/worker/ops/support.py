"""Rows for the ops tests, written as the pipeline writes them (a store, a sink,
deliveries in every state, inbox events, refresh jobs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import add_salla_store, add_webhook_sink
from worker.pipeline import inbox
from worker.pipeline.outbox import new_delivery_id
from worker.platforms.base import ReceivedEvent
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent, RefreshJob, Sink, Store

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
PAYLOAD = {
    "platform": "salla", "store": "salla:1234509876", "customer_id": "1257881496",
    "kinds": ["points.balance_changed"], "balance_before": 0, "balance_after": 1000,
}  # fmt: skip


def store_and_sink(
    runtime: Runtime, url: str = "https://hooks.example.com/x", secret: str = "whsec_" + "A" * 32
) -> tuple[Store, Sink]:
    store = add_salla_store(runtime)
    return store, add_webhook_sink(runtime, store, url, secret)


def add_deliveries(
    runtime: Runtime, sink: Sink, statuses: list[str], start: datetime = START, **values: Any
) -> list[str]:
    """One delivery per status, a minute apart from ``start``; their ids in that order."""
    rows = [
        Delivery(
            id=new_delivery_id(),
            sink_id=sink.id,
            store_id=sink.store_id,
            customer_id=PAYLOAD["customer_id"],
            event_type="points.balance_changed",
            payload=PAYLOAD | values.pop("payload", {}),
            status=status,
            attempts=8 if status == "dead" else 1,
            created_at=start + timedelta(minutes=n),
            next_attempt_at=start + timedelta(minutes=n),
            **values,
        )  # fmt: skip
        for n, status in enumerate(statuses)
    ]
    with runtime.transaction() as session:
        session.add_all(rows)
    return [row.id for row in rows]


def add_event(
    runtime: Runtime,
    status: str,
    body: bytes,
    minute: int = 0,
    event_type: str = "order.created",
    platform: str = "salla",
) -> int:
    row = inbox.row(platform, body, _received(event_type))
    row = inbox.sealed(row | {"status": status}, runtime.cipher)
    row["received_at"] = START + timedelta(minutes=minute)
    with runtime.transaction() as session:
        event = InboxEvent(**row)
        session.add(event)
        session.flush()
        return event.id


def _received(event_type: str) -> ReceivedEvent:
    return ReceivedEvent(
        event_type=event_type, store_ref="1234509876", dedupe_key=new_delivery_id(), headers={}
    )


def add_jobs(runtime: Runtime, store: Store, statuses: list[str]) -> list[int]:
    rows = [
        RefreshJob(
            store_id=store.id,
            customer_id=f"c{n}",
            slot="soon",
            status=status,
            due_at=START + timedelta(minutes=n),
            attempts=8 if status == "failed" else 0,
            last_error="HTTP 500 from the platform" if status == "failed" else None,
        )  # fmt: skip
        for n, status in enumerate(statuses)
    ]
    with runtime.transaction() as session:
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]
