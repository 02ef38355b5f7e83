"""Celery tasks: thin wrappers that take a row id, call the module that
decides, and ring the next doorbell once the decision is committed.

No task publishes work for later: a row due later holds its time in its table
and the dispatcher (``worker.pipeline.dispatcher``) hands it out when due; work
due now rings the dispatcher at once (``_ring_if_due``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from celery import shared_task

from worker import dispatch, runtime
from worker.celery_app import app
from worker.pipeline import dispatcher, inbox, outbox, refresh, retention, schedule, sweeper
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.platforms.zid import tokens as zid_tokens
from worker.storage.models import Store, utcnow

log = logging.getLogger(__name__)
DRAIN_CHUNK = 100  # inbox rows a drain claims at once


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
    _enqueue_refreshes(inbox.process_many(relay, _platforms(), claimed))
    return len(claimed)


@cache
def _dispatch_bell() -> dispatch.DispatchBell:
    return dispatch.DispatchBell(app, runtime.current().settings.broker_url)


@shared_task(name=dispatch.DISPATCH, acks_late=True, soft_time_limit=30, time_limit=60)
def dispatch_due(rung: bool = False) -> int:
    """Hand out due refresh jobs and deliveries (``worker.pipeline.dispatcher``).

    The bell's own dispatch (``rung``) clears it before selecting; a full batch
    rings again at once.
    """
    bell = _dispatch_bell()
    if rung:
        bell.answer()
    handed = dispatcher.run(runtime.current(), _platforms(), utcnow(), _publish)
    if handed.more:
        bell.ring()
    return len(handed)


def _publish(chunks: Sequence[dispatch.Chunk]) -> None:
    dispatch.enqueue_chunks(app, runtime.current().settings.broker_url, chunks)


@shared_task(name=dispatch.REFRESH_POINTS, acks_late=True, soft_time_limit=90, time_limit=120)
def refresh_points(job_id: int) -> None:
    """One refresh job; a rescheduled one waits in its row (its new due time)."""
    _refresh(job_id)


def _refresh(job_id: int) -> None:
    claimed = refresh.claim_with_store(runtime.current(), job_id)
    if claimed is not None:
        _refresh_claimed(claimed)


def _refresh_claimed(claimed: tuple[refresh.ClaimedJob, Store]) -> None:
    try:
        deliveries = refresh.run_claimed(runtime.current(), _platforms(), *claimed)
    except refresh.Reschedule:
        return
    _deliver_here(deliveries)


@shared_task(name=dispatch.REFRESH_MANY, acks_late=True, soft_time_limit=240, time_limit=300)
def refresh_many(job_ids: list[int]) -> None:
    """A chunk the dispatcher handed out (one store's, within its budget), its jobs
    run side by side (``_fetchers``), all claimed first by one statement
    (``refresh.claim_chunk``). A time limit part-way leaves the rest claimed; the
    sweeper hands them out again."""
    claimed = refresh.claim_chunk(runtime.current(), job_ids)
    fetchers = _fetchers() if len(claimed) > 1 else None
    if fetchers is None:
        for pair in claimed:
            _refresh_claimed(pair)
        return
    for _ in fetchers.map(_refresh_claimed, claimed):  # re-raises the first failure, after all ran
        pass


@cache
def _fetchers() -> ThreadPoolExecutor | None:
    """Threads of this worker process for a chunk's refreshes: a refresh spends most
    of its time waiting on the platform's API (two pages, tens of ms each) for a few
    ms of Python, so a chunk's fetches wait together, not one after another. Made in
    the process that uses it (after the fork). None on SQLite: one writer at a time."""
    if runtime.current().settings.database_url.startswith("sqlite"):
        return None
    return ThreadPoolExecutor(dispatcher.REFRESH_CHUNK, thread_name_prefix="refresh")


@shared_task(name=dispatch.DELIVER, acks_late=True, soft_time_limit=45, time_limit=60)
def deliver(delivery_id: str) -> None:
    """One delivery; a retry waits in its row (``next_attempt_at``)."""
    _send_due(outbox.deliver(runtime.current(), delivery_id))


@shared_task(name=dispatch.SWEEP, acks_late=True, soft_time_limit=60, time_limit=90)
def sweep() -> int:
    swept = sweeper.sweep(runtime.current())
    sweeper.ring(app, swept)
    if swept:
        log.warning("sweeper re-enqueued %d stuck rows", len(swept))
    return len(swept)


@shared_task(name=dispatch.DELIVER_MANY, acks_late=True, soft_time_limit=240, time_limit=300)
def deliver_many(delivery_ids: list[str]) -> None:
    """A chunk the dispatcher handed out. A time limit part-way leaves the rest
    pending (or sending) for the dispatcher and the sweeper; each row is claimed,
    so none goes twice."""
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


def enqueue_deliveries(due: Sequence[outbox.Due]) -> None:
    """Deliveries just committed: the dispatcher sends them when due (rung if now)."""
    _ring_if_due(due)


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


def _enqueue_refreshes(due: Sequence[refresh.Due]) -> None:
    """Jobs just committed: the dispatcher hands them out within their store's budget."""
    _ring_if_due(due)


def _deliver_here(due: Sequence[outbox.Due]) -> None:
    """A refresh's deliveries due now, sent by the task that made them: they were
    written claimed for it (``outbox.create_deliveries``), so a webhook's update costs
    no message, task, dispatch or claim of its own. A worker killed before the answer
    is recorded leaves them to the sweeper (claimed) or the dispatcher (handed out)."""
    _send_due(outbox.send_own(runtime.current(), due))


def _send_due(due: Sequence[outbox.Due]) -> None:
    """Deliveries due now go at once (marked as the dispatcher marks them)."""
    now = [item.delivery_id for item in due if item.countdown <= 0]
    if now:
        dispatcher.hand_out_deliveries_now(runtime.current(), now, utcnow(), _publish)


def _ring_if_due(due: Sequence[refresh.Due | outbox.Due]) -> None:
    if any(item.countdown <= 0 for item in due):
        _dispatch_bell().ring()


def ring_dispatcher() -> None:
    """Rows an operator made due now (``deliveries retry``…): sent within a moment."""
    _dispatch_bell().ring()
