"""Ringing the doorbell: Celery messages that carry a row id and nothing else.

Sent by task *name* so the web process never imports the task modules. A lost
message is harmless: the sweeper finds the row still pending and rings again.
"""

from __future__ import annotations

from celery import Celery

HANDLE_EVENT = "relay.handle_event"
HANDLE_EVENTS = "relay.handle_events"
REFRESH_POINTS = "relay.refresh_points"
DELIVER = "relay.deliver"
SWEEP = "relay.sweep"
EXPIRY_NOTICES = "relay.expiry_notices"
RECONCILE = "relay.reconcile"

QUEUES = {
    HANDLE_EVENT: "events",
    HANDLE_EVENTS: "events",
    REFRESH_POINTS: "refresh",
    DELIVER: "deliveries",
    SWEEP: "events",
    EXPIRY_NOTICES: "events",
    RECONCILE: "events",
}


def enqueue(app: Celery, name: str, row_id: int | str, countdown: float = 0.0) -> None:
    app.send_task(
        name,
        args=(row_id,),
        queue=QUEUES[name],
        countdown=countdown if countdown > 0 else None,
        retry=False,
    )


def enqueue_many(app: Celery, name: str, row_ids: list[int]) -> None:
    """One message for a batch of rows (the receiver's group commit)."""
    app.send_task(name, args=(row_ids,), queue=QUEUES[name], retry=False)
