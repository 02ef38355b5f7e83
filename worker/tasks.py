"""Celery tasks: thin wrappers that take a row id, call the module that
decides, and ring the next doorbell once the decision is committed."""

from __future__ import annotations

import logging
import math
from functools import cache

from celery import shared_task

from worker import dispatch, runtime
from worker.celery_app import app
from worker.pipeline import inbox, outbox, refresh, retention, schedule, sweeper
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.platforms.zid import tokens as zid_tokens
from worker.storage.models import utcnow

log = logging.getLogger(__name__)
DRAIN_CHUNK = 100  # inbox rows a drain claims at once
DELIVER_CHUNK = 50  # deliveries per relay.deliver_many message


@cache
def _platforms() -> dict[str, Platform]:
    return build_platforms(runtime.current().settings)


@shared_task(name=dispatch.HANDLE_EVENT, acks_late=True, soft_time_limit=30, time_limit=60)
def handle_event(inbox_id: int) -> None:
    _enqueue_refreshes(inbox.handle(runtime.current(), _platforms(), inbox_id))


@cache
def _inbox_bell() -> dispatch.InboxBell:
    return dispatch.inbox_bell(runtime.current().settings.broker_url)


@shared_task(name=dispatch.DRAIN_INBOX, acks_late=True, soft_time_limit=120, time_limit=180)
def drain_inbox() -> int:
    """Answer the inbox's doorbell: claim a chunk of pending rows and process them.

    The bell is cleared before claiming (see ``worker.dispatch``). A full chunk
    rings again first, so that another worker takes the next chunk meanwhile.
    """
    relay, bell = runtime.current(), _inbox_bell()
    bell.answer()
    claimed = inbox.claim_pending(relay, DRAIN_CHUNK)
    if len(claimed) == DRAIN_CHUNK:
        try:
            bell.ring()
        except dispatch.BrokerUnavailable:
            log.warning("could not ring for the rest of the inbox; the sweeper will")
    for inbox_id in claimed:
        _enqueue_refreshes(inbox.process(relay, _platforms(), inbox_id))
    return len(claimed)


@shared_task(name=dispatch.REFRESH_POINTS, acks_late=True, soft_time_limit=90, time_limit=120)
def refresh_points(job_id: int) -> None:
    try:
        deliveries = refresh.run(runtime.current(), _platforms(), job_id)
    except refresh.Reschedule as later:
        dispatch.enqueue(app, dispatch.REFRESH_POINTS, job_id, later.countdown)
        return
    for due in deliveries:
        dispatch.enqueue(app, dispatch.DELIVER, due.delivery_id, due.countdown)


@shared_task(name=dispatch.DELIVER, acks_late=True, soft_time_limit=45, time_limit=60)
def deliver(delivery_id: str) -> None:
    for later in outbox.deliver(runtime.current(), delivery_id):
        dispatch.enqueue(app, dispatch.DELIVER, later.delivery_id, later.countdown)


@shared_task(name=dispatch.SWEEP, acks_late=True, soft_time_limit=60, time_limit=90)
def sweep() -> int:
    swept = sweeper.sweep(runtime.current())
    sweeper.ring(app, swept)
    if swept:
        log.warning("sweeper re-enqueued %d stuck rows", len(swept))
    return len(swept)


@shared_task(name=dispatch.DELIVER_MANY, acks_late=True, soft_time_limit=240, time_limit=300)
def deliver_many(delivery_ids: list[str]) -> None:
    """A chunk of the scheduler's deliveries. A time limit part-way leaves the rest
    pending (or sending) for the sweeper; each row is claimed, so none goes twice."""
    for delivery_id in delivery_ids:
        deliver(delivery_id)


@shared_task(name=dispatch.EXPIRY_NOTICES, acks_late=True, soft_time_limit=240, time_limit=300)
def expiry_notices() -> int:
    """Each committed batch's messages go out before the next batch begins."""
    sent = 0
    for notices in schedule.expiry_batches(runtime.current(), utcnow()):
        _enqueue_refreshes(notices.refreshes)
        enqueue_deliveries(notices.deliveries)
        sent += len(notices.deliveries)
    return sent


def enqueue_deliveries(due: list[outbox.Due]) -> None:
    """Chunks of ``DELIVER_CHUNK`` ids per message, grouped by the second they are due
    (rounded up: a delivery claimed before its time would be skipped)."""
    by_second: dict[int, list[str]] = {}
    for item in due:
        by_second.setdefault(math.ceil(item.countdown), []).append(item.delivery_id)
    for countdown, ids in by_second.items():
        for start in range(0, len(ids), DELIVER_CHUNK):
            chunk = ids[start : start + DELIVER_CHUNK]
            dispatch.enqueue_many(app, dispatch.DELIVER_MANY, chunk, float(countdown))


@shared_task(name=dispatch.RETENTION, acks_late=True, soft_time_limit=540, time_limit=600)
def purge_old_rows() -> int:
    """Delete finished rows past their retention (``worker.pipeline.retention``)."""
    deleted = retention.purge(runtime.current(), utcnow())
    if any(deleted.values()):
        log.info("retention deleted %s", ", ".join(f"{n} {t}" for t, n in deleted.items() if n))
    return sum(deleted.values())


@shared_task(name=dispatch.RECONCILE, acks_late=True, soft_time_limit=240, time_limit=300)
def reconcile() -> int:
    due = schedule.reconcile(runtime.current(), utcnow())
    _enqueue_refreshes(due)
    return len(due)


@shared_task(name=dispatch.REFRESH_TOKENS, acks_late=True, soft_time_limit=240, time_limit=300)
def refresh_tokens() -> int:
    """Refresh platform tokens before they expire (Zid: ``worker.platforms.zid.tokens``)."""
    return len(zid_tokens.refresh_expiring(runtime.current(), utcnow()).refreshed)


def _enqueue_refreshes(due: list[refresh.Due]) -> None:
    for job in due:
        dispatch.enqueue(app, dispatch.REFRESH_POINTS, job.job_id, job.countdown)
