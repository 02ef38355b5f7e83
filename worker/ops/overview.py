"""The overview's numbers: per-minute counts for the last hour, and the dead and
failing rows, each from a bounded query on an index.

- webhooks: ``inbox_events`` by ``ix_inbox_status_received`` (every status listed,
  so the planner walks one time range per status instead of the table);
- refreshes: finished ``refresh_jobs`` by ``ix_refresh_status_due``, due within the
  last two hours, counted by the minute they finished;
- deliveries: delivered rows by ``ix_deliveries_status_next``, likewise.
Counts of dead and failing rows stop at ``COUNT_CAP`` (a ``LIMIT`` under the
count), so a million dead rows cost a bounded index range, not a table scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from worker.ops.inbox import STATUSES as INBOX_STATUSES
from worker.storage.models import Delivery, InboxEvent, RefreshJob, Sink, utcnow

MINUTES = 60
COUNT_CAP = 10_000
REFRESH_FINISHED = ("done", "held", "failed")


@dataclass(frozen=True)
class Series:
    """Counts per minute, oldest first, ending with the current minute."""

    name: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Count:
    """A count that stopped at ``COUNT_CAP`` reads as "10000+"."""

    label: str
    value: int

    @property
    def capped(self) -> bool:
        return self.value > COUNT_CAP

    def __str__(self) -> str:
        return f"{COUNT_CAP}+" if self.capped else str(self.value)


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


def counts(session: Session) -> list[Count]:
    """Dead and failing rows, each counted up to the cap on its status index."""
    return [
        Count("dead deliveries", _capped(session, Delivery, Delivery.status == "dead")),
        Count("retrying deliveries", _capped(session, Delivery, Delivery.status == "retrying")),
        Count("failed refreshes", _capped(session, RefreshJob, RefreshJob.status == "failed")),
        Count("held refreshes", _capped(session, RefreshJob, RefreshJob.status == "held")),
        Count("failed webhooks", _capped(session, InboxEvent, InboxEvent.status == "failed")),
        Count("paused sinks", _capped(session, Sink, Sink.paused.is_(True))),
    ]


def _capped(session: Session, model: Any, condition: ColumnElement[bool]) -> int:
    rows = select(literal(1)).select_from(model).where(condition).limit(COUNT_CAP + 1)
    return session.scalar(select(func.count()).select_from(rows.subquery())) or 0


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
