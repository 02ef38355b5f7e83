"""Group commit for the receiver: many webhooks, one INSERT, at most one doorbell.

A request hands its row to the process's ``InboxWriter`` and waits. Whichever
request finds no batch being written becomes the *leader*: it takes every row
waiting at that moment, stores them with one ``INSERT … ON CONFLICT
(dedupe_key) DO NOTHING RETURNING``, rings the inbox's doorbell once for the
whole batch (``worker.dispatch.InboxBell``: on Redis a ``SET NX``, and a
``relay.drain_inbox`` message only when no drain is outstanding), and only
then releases the requests of that batch. Rows that arrived while it wrote
form the next batch: the leader hands the lead to the first of them and
answers its own request. So "200 only after commit" holds for every request,
while the round trips are paid once per batch instead of once per webhook,
and under a spike the broker sees a handful of messages instead of thousands.

Nothing waits on a timer and there is no writer thread: at low load a batch is
one row, written by its own request; under a spike, batches grow by themselves
while the previous one is written, and each batch costs one hand-over between
threads instead of two (to a writer and back).

On PostgreSQL the batch is one statement in autocommit: ``INSERT … SELECT FROM
unnest(<one array per column>)`` with the arrays sent in binary, straight
through psycopg on a connection the writer keeps while batches keep coming.
Its text is the same for every batch size, so the server prepares it once, and
the whole batch is one round trip with no BEGIN/COMMIT of its own (a single
statement is atomic). SQLAlchemy's multi-row ``VALUES`` would build, parse and
plan a new statement per batch size, costing the web process about three times
the CPU. Other databases (SQLite, embedded) take the portable statement.

A batch is everyone's: one row the database refuses for its values (a
``DataError`` or a constraint) must not fail the others. Rows are bounded by
their columns before they get here (``worker.pipeline.inbox_rows.row``); should one still be
refused, the batch is retried row by row and only that row's request is
answered 400. A database that is down fails the batch as a whole (503), without
a retry per row.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError

from worker import dispatch
from worker.pipeline import inbox_rows
from worker.runtime import Runtime
from worker.storage.models import InboxEvent

log = logging.getLogger(__name__)
MAX_BATCH = 500
WAIT_SECONDS = 25.0  # a request gives up (503) if its batch has not been written by then


class StoreUnavailable(Exception):
    """The database did not take the batch: nothing of it is stored."""


@dataclass(frozen=True)
class Recorded:
    inbox_id: int | None  # None: a duplicate of an event already stored (or refused)
    queued: bool  # a drain is outstanding for it (False when ignored, duplicate or broker down)
    broker_down: bool = False
    refused: bool = False  # the database refused this row's values (and only this row's)


REFUSED = Recorded(None, queued=False, refused=True)
# Errors that come from a row's values, not from the database being unavailable:
# the batch is then retried row by row, so only the row at fault is refused.
_ROW_ERRORS = (
    psycopg.DataError,
    psycopg.IntegrityError,
    sqlalchemy_exc.DataError,
    sqlalchemy_exc.IntegrityError,
    ValueError,
    TypeError,
)


def _locked() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Pending:
    row: dict[str, Any]
    # Held until the request may go on: released once with its outcome, or to make it lead.
    wake: threading.Lock = field(default_factory=_locked)
    outcome: Recorded | None = None  # None once released: not stored
    lead: bool = False


class InboxWriter:
    def __init__(self, runtime: Runtime, bell: dispatch.InboxBell) -> None:
        self._bell = bell
        self._cipher = runtime.cipher
        self._insert = _inserter(runtime.engine)
        self._lock = threading.Lock()  # guards _waiting and _writing
        self._waiting: list[_Pending] = []
        self._writing = False  # a leader is writing a batch now

    def record(self, row: dict[str, Any]) -> Recorded:
        """Store one inbox row (blocking until written); raise ``StoreUnavailable``."""
        # Encrypted here, in the request's own thread, not in the leader's batch.
        row = inbox_rows.sealed(row, self._cipher)
        pending = _Pending(row)
        with self._lock:
            self._waiting.append(pending)
            pending.lead = not self._writing
            self._writing = True
        if not pending.lead and not pending.wake.acquire(timeout=WAIT_SECONDS):
            self._give_up(pending)
        if pending.lead:
            self._lead()
        if pending.outcome is None:
            raise StoreUnavailable("the inbox did not take the event")
        return pending.outcome

    def _give_up(self, pending: _Pending) -> None:
        """A request waited too long: answer 503 unless the lead has just come to it."""
        with self._lock:
            if pending.lead:
                return  # it was handed the lead as the wait ended: it must write
            if pending in self._waiting:
                self._waiting.remove(pending)  # never written: nothing is stored
        # Otherwise its batch is being written; a retry of it is then a duplicate.
        raise StoreUnavailable("the inbox did not take the event in time")

    def _lead(self) -> None:
        """Store one batch (this request's row included), pass the lead on, ring."""
        with self._lock:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        outcomes: list[Recorded] | None = None
        try:
            outcomes = self._store(batch)
        finally:
            # The next batch's round trip overlaps this batch's ring and answers.
            self._pass_lead()
            if outcomes is None:
                _release(batch, None)  # nothing stored: every request of it answers 503
        if outcomes is None:
            return
        try:
            outcomes = self._ring(outcomes)
        finally:
            _release(batch, outcomes)

    def _store(self, batch: list[_Pending]) -> list[Recorded] | None:
        """Insert the batch; None when the database did not take it (nothing stored)."""
        try:
            try:
                return _outcomes(batch, self._insert([pending.row for pending in batch]))
            except _ROW_ERRORS:
                return self._store_one_by_one(batch)
        except (SQLAlchemyError, psycopg.Error):
            log.exception(
                "inbox unavailable: %d webhooks will be retried by their platform", len(batch)
            )
            return None

    def _store_one_by_one(self, batch: list[_Pending]) -> list[Recorded]:
        """A row's values failed the batch: store each row alone, refuse the bad ones."""
        outcomes = []
        for pending in batch:
            try:
                outcomes += _outcomes([pending], self._insert([pending.row]))
            except _ROW_ERRORS as exc:
                # The type only: the values are a platform's body and may hold personal data.
                log.warning("an inbox row was refused (%s); answering 400", type(exc).__name__)
                outcomes.append(REFUSED)
        return outcomes

    def _pass_lead(self) -> None:
        with self._lock:
            if not self._hand_over():
                self._writing = False

    def _hand_over(self) -> bool:
        """With ``_lock`` held: make the first waiting request the leader, if any."""
        if not self._waiting:
            return False
        successor = self._waiting[0]
        successor.lead = True
        successor.wake.release()
        return True

    def _ring(self, outcomes: list[Recorded]) -> list[Recorded]:
        """One ring for the batch's new events; mark them if the broker is down."""
        new = sum(outcome.queued for outcome in outcomes)
        if not new:
            return outcomes
        try:
            self._bell.ring()
        except dispatch.BrokerUnavailable:
            log.exception("broker unavailable; %d stored events wait for the sweeper", new)
            return [_broker_down(outcome) for outcome in outcomes]
        return outcomes


# Stores a batch of inbox rows; returns the new rows' ids by dedupe key.
_Inserter = Callable[[list[dict[str, Any]]], dict[str, int]]


def _inserter(engine: Engine) -> _Inserter:
    if engine.dialect.name == "postgresql":
        return _PostgresInserter(engine)
    return _PortableInserter(engine)


class _PortableInserter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._statement = (
            sqlite.insert(InboxEvent)
            .on_conflict_do_nothing()
            .returning(InboxEvent.id, InboxEvent.dedupe_key)
        )

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        with self._engine.begin() as connection:
            result = connection.execute(self._statement, rows)
            return {key: row_id for row_id, key in result}


# Inbox columns in insert order with their PostgreSQL type; every inbox row
# carries each of these keys. The body travels base64-encoded (JSON has no bytes).
_COLUMNS = (
    ("platform", "text"),
    ("store_ref", "text"),
    ("event_type", "text"),
    ("dedupe_key", "text"),
    ("body", "text"),
    ("headers", "json"),
    ("status", "text"),
    ("reason", "text"),
    ("attempts", "int4"),
    ("received_at", "timestamptz"),
)
_NAMES = ", ".join(name for name, _ in _COLUMNS)
_DECODED = _NAMES.replace("body", "decode(body, 'base64')")


def _batch_document(rows: list[dict[str, Any]]) -> str:
    """The batch as one JSON array of records: one parameter, whatever the batch size."""
    records = [
        row | {"body": b64encode(row["body"]).decode(), "received_at": str(row["received_at"])}
        for row in rows
    ]
    return json.dumps(records, separators=(",", ":"))


class _PostgresInserter:
    SQL = (
        f"INSERT INTO {InboxEvent.__tablename__} ({_NAMES}) "
        f"SELECT {_DECODED} "
        f"FROM json_to_recordset(%s::json) "
        f"AS batch({', '.join(f'{name} {kind}' for name, kind in _COLUMNS)}) "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
    )

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # A connection of its own in autocommit (taken from the pool and detached),
        # kept for the life of the writer: no check-out and reset per batch.
        self._connection: psycopg.Connection[Any] | None = None
        self._closer: weakref.finalize[[], _PostgresInserter] | None = None  # closes with us

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        connection = self._connection or self._checkout()
        try:
            cursor = connection.execute(self.SQL, (_batch_document(rows),), prepare=True)
            return {key: row_id for row_id, key in cursor}
        except psycopg.Error:
            self._discard()  # a broken connection is not reused; the next batch opens one
            raise

    def _checkout(self) -> psycopg.Connection[Any]:
        pooled = self._engine.raw_connection()
        connection = pooled.driver_connection
        assert isinstance(connection, psycopg.Connection)
        pooled.detach()  # it never goes back to the pool: autocommit stays ours
        connection.autocommit = True
        self._connection, self._closer = connection, weakref.finalize(self, connection.close)
        return connection

    def _discard(self) -> None:
        if self._closer is not None:
            self._closer()  # closes the connection once; the finalizer is spent
        self._connection = self._closer = None


def _outcomes(batch: list[_Pending], inserted: dict[str, int]) -> list[Recorded]:
    """The first row with a new dedupe key got the id; later copies are duplicates."""
    outcomes = []
    for pending in batch:
        inbox_id = inserted.pop(pending.row["dedupe_key"], None)
        queued = inbox_id is not None and pending.row["status"] == "pending"
        outcomes.append(Recorded(inbox_id, queued))
    return outcomes


def _broker_down(outcome: Recorded) -> Recorded:
    if outcome.queued:
        return Recorded(outcome.inbox_id, queued=False, broker_down=True)
    return outcome


def _release(batch: list[_Pending], outcomes: list[Recorded] | None) -> None:
    """Let the batch's requests answer: with their outcomes, or failed (``None``)."""
    for index, pending in enumerate(batch):
        pending.outcome = outcomes[index] if outcomes is not None else None
        if not pending.lead:
            pending.wake.release()
