"""The overview's numbers: per-minute counts for the last hour, and the dead and
failing rows, each from a bounded query on an index.

- webhooks: ``inbox_events`` by ``ix_inbox_status_received`` (every status listed,
  so the planner walks one time range per status instead of the table);
- refreshes: finished ``refresh_jobs`` by ``ix_refresh_status_due``, due within the
  last two hours, counted by the minute they finished;
- deliveries: delivered rows by ``ix_deliveries_status_next``, likewise.
Counts of dead and failing rows come from the queue report (``worker.ops.queues``):
capped counts on the status index, so a million dead rows cost a bounded range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from worker.ops.inbox import STATUSES as INBOX_STATUSES
from worker.ops.queues import TableState
from worker.storage.models import Delivery, InboxEvent, RefreshJob, Sink, utcnow

MINUTES = 60
REFRESH_FINISHED = ("done", "held", "failed")


@dataclass(frozen=True)
class Series:
    """Counts per minute, oldest first, ending with the current minute."""

    name: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def series(session: Session, now: datetime | None = None) -> list[Series]:
    now = now or utcnow()
    since = _minute_start(now) - timedelta(minutes=MINUTES - 1)
    lookback = since - timedelta(hours=1)  # a job or delivery due up to an hour before it ran
    webhooks = _per_minute(
        session,
        InboxEvent.received_at,
        [InboxEvent.status.in_(INBOX_STATUSES), InboxEvent.received_at >= since],
    )
    refreshes = _per_minute(
        session,
        RefreshJob.finished_at,
        [RefreshJob.status.in_(REFRESH_FINISHED), RefreshJob.due_at >= lookback,
         RefreshJob.finished_at >= since],
    )  # fmt: skip
    deliveries = _per_minute(
        session,
        Delivery.delivered_at,
        [Delivery.status == "delivered", Delivery.next_attempt_at >= lookback,
         Delivery.delivered_at >= since],
    )  # fmt: skip
    first = _epoch_minute(since)
    return [
        Series(name, tuple(found.get(first + n, 0) for n in range(MINUTES)))
        for name, found in (("webhooks", webhooks), ("refreshes", refreshes),
                            ("deliveries", deliveries))
    ]  # fmt: skip


@dataclass(frozen=True)
class Count:
    """A number an operator acts on; ``capped``: at least this many."""

    label: str
    value: int
    capped: bool = False

    def __str__(self) -> str:
        return f"≥{self.value}" if self.capped else str(self.value)


# (table, status, label): the rows an operator acts on, from ``worker.ops.queues``.
ATTENTION = (
    ("deliveries", "dead", "dead deliveries"),
    ("deliveries", "retrying", "retrying deliveries"),
    ("refresh_jobs", "failed", "failed refreshes"),
    ("refresh_jobs", "held", "held refreshes"),
    ("inbox_events", "failed", "failed webhooks"),
)


def counts(session: Session, states: Sequence[TableState]) -> list[Count]:
    """Dead and failing rows (counted through the status index up to the queue report's
    cap), and the paused sinks (a small table)."""
    found = {(state.table, count.status): count for state in states for count in state.statuses}
    rows = [
        Count(label, found[(table, status)].rows, found[(table, status)].capped)
        for table, status, label in ATTENTION
        if (table, status) in found
    ]
    paused = session.scalar(select(func.count()).select_from(Sink).where(Sink.paused.is_(True)))
    return [*rows, Count("paused sinks", paused or 0)]


def _per_minute(
    session: Session, column: Any, conditions: list[ColumnElement[bool]]
) -> dict[int, int]:
    minute = _minute_expression(session, column).label("minute")
    query = select(minute, func.count()).where(*conditions).group_by(minute)
    return {int(value): count for value, count in session.execute(query) if value is not None}


def _minute_expression(session: Session, column: Any) -> ColumnElement[Any]:
    """Minutes since the epoch, in SQL: SQLite stores UTC text, PostgreSQL timestamptz."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer) / 60
    return cast(func.floor(func.extract("epoch", column) / 60), BigInteger)


def _minute_start(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _epoch_minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60
