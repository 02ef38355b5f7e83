"""Group commit for the receiver: many webhooks, one INSERT, one COMMIT, one doorbell.

Each request thread hands its row to the process's ``InboxWriter`` and waits.
The writer thread takes everything queued at that moment, inserts it with one
multi-row ``INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING``, commits,
rings the doorbell once for the whole batch (``relay.handle_events`` with the
new ids), and only then releases the waiting requests. So "200 only after
commit" holds for every request, while the commit, the round trips and the
Celery publish are paid once per batch instead of once per webhook. Nothing
waits artificially: at low load a batch is one row; under a spike, batches
grow by themselves while the previous one commits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from worker import dispatch
from worker.runtime import Runtime
from worker.storage.models import InboxEvent

log = logging.getLogger(__name__)
MAX_BATCH = 200
LINGER_SECONDS = 0.002
WAIT_SECONDS = 25.0  # a request gives up (503) if its batch has not committed by then


class StoreUnavailable(Exception):
    """The database did not take the batch: nothing of it is stored."""


@dataclass(frozen=True)
class Recorded:
    inbox_id: int | None  # None: a duplicate of an event already stored
    queued: bool  # a worker has been told (False when ignored, duplicate or broker down)
    broker_down: bool = False


@dataclass
class _Pending:
    row: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Recorded | None = None
    failed: bool = False


class InboxWriter:
    def __init__(self, runtime: Runtime, celery: Celery) -> None:
        self._runtime, self._celery = runtime, celery
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._statement = _statement(runtime.engine.dialect.name)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, row: dict[str, Any]) -> Recorded:
        """Store one inbox row (blocking until committed); raise ``StoreUnavailable``."""
        pending = _Pending(row)
        self._ensure_running()
        self._queue.put(pending)
        if not pending.done.wait(WAIT_SECONDS) or pending.failed or pending.outcome is None:
            raise StoreUnavailable("the inbox did not commit in time")
        return pending.outcome

    def _ensure_running(self) -> None:
        # Started lazily, in the serving process: gunicorn may fork after the app is built.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        linger = 0.0
        while True:
            batch = self._collect(linger)
            # Under load (more than one request per batch), linger a moment so the
            # next batch is bigger; at low load, never wait.
            linger = LINGER_SECONDS if len(batch) > 1 else 0.0
            self._write(batch)

    def _collect(self, linger: float) -> list[_Pending]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + linger
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[_Pending]) -> None:
        try:
            inserted = self._insert([pending.row for pending in batch])
        except SQLAlchemyError:
            log.exception(
                "inbox unavailable: %d webhooks will be retried by their platform", len(batch)
            )
            _release(batch, failed=True)
            return
        outcomes = _outcomes(batch, inserted)
        broker_down = not self._ring([o.inbox_id for o in outcomes if o.queued and o.inbox_id])
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.outcome = _with_broker(outcome, broker_down)
        _release(batch, failed=False)

    def _insert(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        with self._runtime.engine.begin() as connection:
            result = connection.execute(self._statement, rows)
            return {key: row_id for row_id, key in result}

    def _ring(self, ids: list[int]) -> bool:
        if not ids:
            return True
        try:
            dispatch.enqueue_many(self._celery, dispatch.HANDLE_EVENTS, ids)
        except (KombuError, OSError):
            log.exception("broker unavailable; %d stored events wait for the sweeper", len(ids))
            return False
        return True


def _statement(dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(InboxEvent).on_conflict_do_nothing().returning(InboxEvent.id, InboxEvent.dedupe_key)
    )


def _outcomes(batch: list[_Pending], inserted: dict[str, int]) -> list[Recorded]:
    """The first row with a new dedupe key got the id; later copies are duplicates."""
    outcomes = []
    for pending in batch:
        inbox_id = inserted.pop(pending.row["dedupe_key"], None)
        queued = inbox_id is not None and pending.row["status"] == "pending"
        outcomes.append(Recorded(inbox_id, queued))
    return outcomes


def _with_broker(outcome: Recorded, broker_down: bool) -> Recorded:
    if broker_down and outcome.queued:
        return Recorded(outcome.inbox_id, queued=False, broker_down=True)
    return outcome


def _release(batch: list[_Pending], *, failed: bool) -> None:
    for pending in batch:
        pending.failed = failed
        pending.done.set()
