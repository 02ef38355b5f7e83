"""How far behind the service is: the broker's queues and the tables behind them.

Per Celery queue (``worker.dispatch.QUEUES``): its depth and the age of its
oldest message. Neither broker stamps a message with the time it was sent
(kombu's Redis transport keeps the envelope in a list, the SQLAlchemy one sets
its ``timestamp`` only when a worker takes it), so the age is read from what
the message is for: its ETA when it has one, otherwise the due time of the row
it rings for (a delivery's ``next_attempt_at``, a job's ``due_at``, an event's
``received_at``; a drain rings for the oldest pending event). That is the age
an operator cares about: how long the work has waited, however often it was
re-rung. A message for a row that no longer exists has no age (``None``).

Per table (inbox_events, refresh_jobs, deliveries): rows by status, and the age
of the oldest row that is due and not yet taken. Every count is bounded, so
``queues`` and the dashboard stay cheap at 10M rows: statuses still in flight
(and the failures an operator acts on) are counted exactly through the status
index but stop at ``COUNT_CAP`` (shown as "at least"); finished statuses
(done, delivered, skipped, ignored) — the bulk of every table — are the
planner's estimate on PostgreSQL (``EXPLAIN``, no row read) and a capped count
on the embedded SQLite database, which is small by design. Oldest ages are the
first entry of the (status, time) index per status (``ORDER BY … LIMIT 1``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, create_engine, func, literal, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from worker import dispatch
from worker.pipeline import inbox, outbox, refresh
from worker.queues import read_lists
from worker.redis_wire import RedisWire, WireError
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent, RefreshJob, utcnow

COUNT_CAP = 100_000


@dataclass(frozen=True)
class QueueDepth:
    name: str
    depth: int | None  # None: the broker could not be read
    oldest_seconds: float | None


@dataclass(frozen=True)
class StatusCount:
    status: str
    rows: int
    exact: bool  # False: the planner's estimate
    capped: bool = False  # True: at least ``rows``


@dataclass(frozen=True)
class TableState:
    table: str
    statuses: tuple[StatusCount, ...]
    oldest_due_seconds: float | None  # the oldest row due and not taken yet


@dataclass(frozen=True)
class QueuesReport:
    broker: str
    queues: tuple[QueueDepth, ...]
    tables: tuple[TableState, ...]


@dataclass(frozen=True)
class Table:
    """What ``table_states`` reads of one table."""

    name: str
    status: InstrumentedAttribute[Any]
    counted: tuple[str, ...]  # exactly (capped)
    estimated: tuple[str, ...]  # the bulk: an estimate on PostgreSQL
    due: InstrumentedAttribute[Any]
    waiting: tuple[str, ...]  # the statuses whose due rows are waiting to be taken


TABLES = (
    Table(
        "inbox_events", InboxEvent.status,
        (inbox.PENDING, inbox.PROCESSING, inbox.WAITING, inbox.FAILED),
        (inbox.DONE, inbox.IGNORED), InboxEvent.received_at, (inbox.PENDING,),
    ),
    Table(
        "refresh_jobs", RefreshJob.status,
        (refresh.PENDING, refresh.WORKING, refresh.RETRYING, refresh.HELD, refresh.FAILED),
        (refresh.DONE,), RefreshJob.due_at, (refresh.PENDING, refresh.RETRYING),
    ),
    Table(
        "deliveries", Delivery.status,
        (outbox.PENDING, outbox.SENDING, outbox.RETRYING, outbox.DEAD),
        (outbox.DELIVERED, outbox.SKIPPED), Delivery.next_attempt_at,
        (outbox.PENDING, outbox.RETRYING),
    ),
)  # fmt: skip


def report(runtime: Runtime, cap: int = COUNT_CAP) -> QueuesReport:
    with runtime.sessions() as session:
        queues = broker_queues(runtime, session)
        tables = table_states(session, cap)
    return QueuesReport(runtime.settings.broker_url.split("://", 1)[0], queues, tables)


def queue_names() -> list[str]:
    return sorted(set(dispatch.QUEUES.values()))


# --- the tables -------------------------------------------------------------------------


def table_states(session: Session, cap: int = COUNT_CAP) -> tuple[TableState, ...]:
    now = utcnow()
    return tuple(_state(session, table, now, cap) for table in TABLES)


def _state(session: Session, table: Table, now: datetime, cap: int) -> TableState:
    estimate = session.get_bind().dialect.name == "postgresql"
    counts = [_counted(session, table.status, status, cap) for status in table.counted]
    counts += [
        _estimated(session, table, status)
        if estimate
        else _counted(session, table.status, status, cap)
        for status in table.estimated
    ]
    oldest = _oldest_due(session, table, now)
    age = (now - oldest).total_seconds() if oldest is not None else None
    return TableState(table.name, tuple(counts), age)


def _counted(
    session: Session, column: InstrumentedAttribute[Any], status: str, cap: int
) -> StatusCount:
    """An index range read that stops after ``cap`` + 1 entries."""
    bounded = select(literal(1)).where(column == status).limit(cap + 1).subquery()
    rows = session.scalar(select(func.count()).select_from(bounded)) or 0
    return StatusCount(status, min(rows, cap), exact=True, capped=rows > cap)


def _estimated(session: Session, table: Table, status: str) -> StatusCount:
    """The planner's row estimate for the status (its statistics; nothing is read)."""
    plan = session.execute(
        text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table.name} WHERE status = :status"),
        {"status": status},
    ).scalar_one()
    document = plan if isinstance(plan, list) else json.loads(plan)
    return StatusCount(status, int(document[0]["Plan"]["Plan Rows"]), exact=False)


def _oldest_due(session: Session, table: Table, now: datetime) -> datetime | None:
    """The first entry of the (status, time) index per waiting status: ``ORDER BY …
    LIMIT 1`` rather than ``MIN``, which the planner may answer by reading every row
    of the status when its statistics say they are few."""
    found = [
        session.scalar(
            select(table.due)
            .where(table.status == status, table.due <= now)
            .order_by(table.due)
            .limit(1)
        )
        for status in table.waiting
    ]
    moments = [moment for moment in found if moment is not None]
    return min(moments) if moments else None


# --- the broker -------------------------------------------------------------------------


def broker_queues(runtime: Runtime, session: Session) -> tuple[QueueDepth, ...]:
    url = runtime.settings.broker_url
    broker: _RedisQueues | _SqlQueues
    if url.startswith(("redis://", "rediss://", "unix://")):
        broker = _RedisQueues(url)
    elif url.startswith("sqla+"):
        broker = _SqlQueues(url.removeprefix("sqla+"))
    else:
        return tuple(QueueDepth(name, None, None) for name in queue_names())
    try:
        return tuple(_depth(session, name, broker.read) for name in queue_names())
    finally:
        broker.close()


def _depth(
    session: Session, name: str, read: Callable[[str], tuple[int, bytes | None]]
) -> QueueDepth:
    try:
        depth, oldest = read(name)
    except (WireError, SQLAlchemyError, OSError):
        return QueueDepth(name, None, None)
    ready = message_ready_at(session, oldest) if oldest else None
    age = max(0.0, (utcnow() - ready).total_seconds()) if ready else None
    return QueueDepth(name, depth, age)


class _RedisQueues:
    """kombu's Redis transport: a list per queue (and per priority level), published
    with LPUSH, taken from the right, so the oldest message is the last element; read
    as the metrics read it (``worker.queues.read_lists``)."""

    def __init__(self, url: str) -> None:
        self._wire = RedisWire(url)

    def read(self, name: str) -> tuple[int, bytes | None]:
        return read_lists(self._wire, [name])[0]

    def close(self) -> None:
        self._wire.close()


class _SqlQueues:
    """kombu's SQLAlchemy transport (the embedded broker): ``kombu_queue`` and
    ``kombu_message`` rows, visible until a worker takes them, oldest lowest id."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(url)

    def read(self, name: str) -> tuple[int, bytes | None]:
        query = (
            "SELECT count(*), min(m.id) FROM kombu_message m JOIN kombu_queue q "
            "ON q.id = m.queue_id WHERE q.name = :name AND m.visible"
        )
        try:
            with self._engine.connect() as connection:
                depth, first = connection.execute(text(query), {"name": name}).one()
                payload = connection.execute(
                    text("SELECT payload FROM kombu_message WHERE id = :id"), {"id": first}
                ).scalar()
        except SQLAlchemyError as exc:
            if "no such table" in str(exc):
                return 0, None  # no message was ever published
            raise
        return int(depth), payload.encode() if isinstance(payload, str) else payload

    def close(self) -> None:
        self._engine.dispose()


def message_ready_at(session: Session, raw: bytes) -> datetime | None:
    """When the work a kombu message carries became due (see the module docstring)."""
    try:
        envelope = json.loads(raw)
        headers = envelope.get("headers") or {}
        if headers.get("eta"):
            return datetime.fromisoformat(headers["eta"])
        args = _args(envelope)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return _row_due(session, str(headers.get("task")), args)


def _args(envelope: dict[str, Any]) -> list[Any]:
    body = envelope["body"]
    if (envelope.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]  # Celery's protocol 2 body: [args, kwargs, embed]
    return list(args) if isinstance(args, list) else []


def _row_due(session: Session, task: str, args: Sequence[Any]) -> datetime | None:
    if task == dispatch.DRAIN_INBOX:
        pending = InboxEvent.status == inbox.PENDING
        first = select(InboxEvent.received_at).where(pending).order_by(InboxEvent.received_at)
        return session.scalar(first.limit(1))
    column, key = _ROW_TIMES.get(task, (None, None))
    if column is None or key is None or not args:
        return None
    ids = args[0] if isinstance(args[0], list) else [args[0]]
    condition: ColumnElement[bool] = key.in_(ids)
    return session.scalar(select(func.min(column)).where(condition))


_ROW_TIMES: dict[str, tuple[Any, Any]] = {
    dispatch.HANDLE_EVENT: (InboxEvent.received_at, InboxEvent.id),
    dispatch.REFRESH_POINTS: (RefreshJob.due_at, RefreshJob.id),
    dispatch.REFRESH_MANY: (RefreshJob.due_at, RefreshJob.id),
    dispatch.DELIVER: (Delivery.next_attempt_at, Delivery.id),
    dispatch.DELIVER_MANY: (Delivery.next_attempt_at, Delivery.id),
}
