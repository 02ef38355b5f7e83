"""Retention: old finished rows are deleted, so that the tables (and every
scan, count and backup of them) stop growing with the service's age.

Run from beat as ``relay.retention``. Deleted past ``RELAY_RETENTION_DAYS``
(default 14): inbox rows processed (``done`` / ``ignored``, with the sealed
bodies kept for ``inbox replay``), refresh jobs ``done``, deliveries
``delivered`` / ``skipped``, and changes no delivery refers to any more.
Failures are kept for ``RELAY_RETENTION_DEAD_DAYS`` (default 30) so that an
operator can still look at them and replay: ``dead`` deliveries, ``failed``
inbox rows and jobs. Rows still in flight (pending, processing, working,
sending, retrying) and held refresh jobs (an operator's attention) are never
deleted, whatever their age.

Small batches, each its own transaction, and no long lock: a batch selects up
to ``BATCH`` primary keys through an index (the status/time indexes of each
table), then deletes those keys with the condition repeated, so a row that
changed status in between stays. A run stops after ``MAX_BATCHES`` per table;
the next run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from worker.pipeline import inbox, outbox, refresh
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent, PointsChange, RefreshJob
from worker.storage.upsert import rows_changed

BATCH = 1000  # rows per DELETE statement (and per transaction)
MAX_BATCHES = 500  # per table and run: 500,000 rows


@dataclass(frozen=True)
class Rule:
    """One table's expired rows: ``key`` is its primary key, ``expired`` the condition."""

    table: str
    key: InstrumentedAttribute[Any]
    expired: ColumnElement[bool]


def rules(runtime: Runtime, now: datetime) -> Iterator[Rule]:
    """In dependency order: deliveries go before the changes they refer to."""
    kept = now - timedelta(days=runtime.settings.retention_days)
    dead = now - timedelta(days=runtime.settings.retention_dead_days)
    yield Rule("inbox_events", InboxEvent.id, or_(
        _inbox(InboxEvent.status.in_((inbox.DONE, inbox.IGNORED)), kept),
        _inbox(InboxEvent.status == inbox.FAILED, dead),
    ))  # fmt: skip
    yield Rule("refresh_jobs", RefreshJob.id, or_(
        _job(RefreshJob.status == refresh.DONE, kept),
        _job(RefreshJob.status == refresh.FAILED, dead),
    ))  # fmt: skip
    yield Rule("deliveries", Delivery.id, or_(
        _delivery(Delivery.status.in_((outbox.DELIVERED, outbox.SKIPPED)), kept),
        _delivery(Delivery.status == outbox.DEAD, dead),
    ))  # fmt: skip
    referenced = exists().where(Delivery.change_id == PointsChange.id)
    yield Rule("points_changes", PointsChange.id, and_(PointsChange.created_at < kept, ~referenced))


def _inbox(status: ColumnElement[bool], before: datetime) -> ColumnElement[bool]:
    # received_at leads ix_inbox_status_received; processed_at says the row is finished.
    return and_(status, InboxEvent.received_at < before, InboxEvent.processed_at < before)


def _job(status: ColumnElement[bool], before: datetime) -> ColumnElement[bool]:
    finished = or_(RefreshJob.finished_at.is_(None), RefreshJob.finished_at < before)
    return and_(status, RefreshJob.due_at < before, finished)  # ix_refresh_status_due


def _delivery(status: ColumnElement[bool], before: datetime) -> ColumnElement[bool]:
    # ix_deliveries_status_next; created_at too, so a row is never younger than the window.
    return and_(status, Delivery.next_attempt_at < before, Delivery.created_at < before)


def purge(runtime: Runtime, now: datetime) -> dict[str, int]:
    """Delete what is past its retention; return the rows deleted per table."""
    return {rule.table: _purge(runtime, rule) for rule in rules(runtime, now)}


def _purge(runtime: Runtime, rule: Rule) -> int:
    deleted = 0
    for _ in range(MAX_BATCHES):
        with runtime.transaction() as session:
            keys = list(session.scalars(select(rule.key).where(rule.expired).limit(BATCH)))
            if keys:
                statement = (
                    delete(rule.key.class_)
                    .where(rule.key.in_(keys), rule.expired)
                    .execution_options(synchronize_session=False)
                )
                deleted += rows_changed(session, statement)
        if len(keys) < BATCH:
            break
    return deleted
