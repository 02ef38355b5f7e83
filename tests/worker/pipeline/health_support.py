"""A store with a signed-webhook sink pointed at a real capture endpoint on 127.0.0.1,
and ways to read what the outbox recorded: delivery rows, attempt rows, the sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from tests.factories import add_salla_store, add_webhook_sink
from worker.pipeline import outbox
from worker.points import BALANCE_CHANGED
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import Delivery, DeliveryAttempt, Sink, Store, utcnow

Serve = Callable[[Any], RunningServer]
PHONE, EMAIL = "+966501234567", "sara@example.com"


@dataclass
class Endpoint:
    """The sink's row and its receiver's log."""

    runtime: Runtime
    store: Store
    sink_id: int
    log: CaptureLog

    def queue(self, count: int = 1) -> list[outbox.Due]:
        """``count`` changes (one customer each), committed; what to enqueue."""
        with self.runtime.transaction() as session:
            return [
                due
                for i in range(count)
                for due in outbox.create_deliveries(session, self.store, None, payload(str(i)))
            ]

    def waiting(self) -> list[str]:
        query = select(Delivery.id).where(Delivery.status.in_(("pending", "retrying")))
        with self.runtime.sessions() as session:
            return list(session.scalars(query.order_by(Delivery.created_at)))

    def sink(self) -> Sink:
        with self.runtime.sessions() as session:
            return session.get_one(Sink, self.sink_id)


def endpoint(runtime: Runtime, serve: Serve, **capture: Any) -> Endpoint:
    """A capture receiver (``fail_first``, ``fail_status`` as ``create_capture_app``)."""
    secret = new_secret()
    app = create_capture_app(secret, **capture)
    server = serve(app)
    store = add_salla_store(runtime)
    sink = add_webhook_sink(runtime, store, f"{server.url}/hooks?token=tok_live_abcdef", secret)
    return Endpoint(runtime, store, sink.id, capture_log(app))


def payload(customer_id: str = "7") -> dict[str, Any]:
    return {"customer_id": customer_id, "kinds": [BALANCE_CHANGED], "balance_before": 0,
            "balance_after": 5}  # fmt: skip


def row(runtime: Runtime, delivery_id: str) -> Delivery:
    with runtime.sessions() as session:
        return session.get_one(Delivery, delivery_id)


def attempts_of(runtime: Runtime, delivery_id: str) -> list[DeliveryAttempt]:
    query = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
    with runtime.sessions() as session:
        return list(session.scalars(query.order_by(DeliveryAttempt.number)))


def make_due(runtime: Runtime, *delivery_ids: str) -> None:
    """Skip a wait: the deliveries' next attempt is now (as if the time had come)."""
    with runtime.transaction() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def probe_now(runtime: Runtime, sink_id: int) -> None:
    """Skip the breaker's wait: its probe is due (as if its time had come)."""
    with runtime.transaction() as session:
        session.get_one(Sink, sink_id).probe_at = utcnow() - timedelta(seconds=1)
