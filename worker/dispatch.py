"""Ringing the doorbell: Celery messages that carry a row id, or nothing at all.

Sent by task *name* so the web process never imports the task modules. A lost
message is harmless: the sweeper finds the row still pending and rings again.

The inbox has a doorbell of its own (``InboxBell``): the receiver does not send
one message per stored batch but makes sure that one ``relay.drain_inbox`` is
outstanding, and a drain claims every pending row it finds. On Redis that is a
``SET NX`` per batch; a message is published only when no drain is outstanding.
Why this never strands a row:

- the receiver rings *after* its rows are committed;
- a drain clears the bell *before* it claims rows;
- so if a ring finds the bell already set, the drain that set it has not yet
  cleared it, will claim after clearing, and sees the committed rows.

The bell expires (``BELL_TTL_MS``) in case its message is lost (a flushed
queue, a worker killed between taking the message and clearing the bell): the
next batch then rings again, and the sweeper stays the last safety net.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import redis
from celery import Celery
from kombu.exceptions import KombuError

log = logging.getLogger(__name__)

HANDLE_EVENT = "relay.handle_event"
DRAIN_INBOX = "relay.drain_inbox"
REFRESH_POINTS = "relay.refresh_points"
REFRESH_MANY = "relay.refresh_many"
DISPATCH = "relay.dispatch"
DELIVER = "relay.deliver"
DELIVER_MANY = "relay.deliver_many"
SWEEP = "relay.sweep"
EXPIRY_NOTICES = "relay.expiry_notices"
RECONCILE = "relay.reconcile"
RECONCILE_INTERVAL = 300.0  # seconds between its runs; each run's share is sized by it
REFRESH_TOKENS = "relay.refresh_tokens"
RETENTION = "relay.retention"

QUEUES = {
    HANDLE_EVENT: "events",
    DRAIN_INBOX: "events",
    REFRESH_POINTS: "refresh",
    REFRESH_MANY: "refresh",
    DISPATCH: "events",
    DELIVER: "deliveries",
    DELIVER_MANY: "deliveries",
    SWEEP: "events",
    EXPIRY_NOTICES: "events",
    RECONCILE: "events",
    REFRESH_TOKENS: "events",
    RETENTION: "events",
}

BELL_KEY = "relay:inbox:bell"
BELL_TTL_MS = 30_000


class BrokerUnavailable(Exception):
    """The doorbell could not be rung: what was stored waits for the sweeper."""


def enqueue(app: Celery, name: str, row_id: int | str, countdown: float = 0.0) -> None:
    """Publish a row that is due now. One due later (``countdown`` > 0) is not
    published: its row holds the time, and the dispatcher hands it out then."""
    if countdown <= 0:
        app.send_task(name, args=(row_id,), queue=QUEUES[name], retry=False)


def enqueue_many(app: Celery, name: str, row_ids: Sequence[int | str]) -> None:
    """One message for a chunk of rows that are due now (the dispatcher's batches)."""
    app.send_task(name, args=(list(row_ids),), queue=QUEUES[name], retry=False)


def request_dispatch(app: Celery, *, rung: bool = False) -> None:
    """Ask for a ``relay.dispatch`` now (ops, the sweeper): rows made due are sent.
    ``rung``: the bell's own, which clears the bell (``DispatchBell``)."""
    app.send_task(DISPATCH, kwargs={"rung": rung}, queue=QUEUES[DISPATCH], retry=False)


class InboxBell(Protocol):
    def ring(self) -> None:
        """Make sure a drain is outstanding; raise ``BrokerUnavailable``."""

    def answer(self) -> None:
        """Called by a drain before it claims rows: the next ring sends a new one."""


def inbox_bell(celery: Celery, broker_url: str) -> InboxBell:
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBell(celery, broker_url)
    return EveryTimeBell(celery)


def _send_drain(celery: Celery) -> None:
    try:
        celery.send_task(DRAIN_INBOX, queue=QUEUES[DRAIN_INBOX], retry=False)
    except (KombuError, OSError) as exc:
        raise BrokerUnavailable(str(exc)) from exc


class EveryTimeBell:
    """Brokers other than Redis (the embedded SQLite one): one drain per ring."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def ring(self) -> None:
        _send_drain(self._celery)

    def answer(self) -> None:
        pass


class RedisBell:
    """At most one drain outstanding, kept by a key beside the broker's queues.

    The bell talks over one connection of its own, without redis-py's pool and
    retry layers: a ring is one short command per batch on the receiver's hot
    path, and a failed one is answered by the caller (503, then the sweeper).
    """

    def __init__(self, celery: Celery, url: str) -> None:
        self._celery = celery
        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._connection = pool.make_connection()
        self._lock = threading.Lock()

    def ring(self) -> None:
        try:
            if self._command("SET", BELL_KEY, b"1", "NX", "PX", BELL_TTL_MS) is None:
                return  # a drain is outstanding and has not cleared the bell yet
        except redis.RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        try:
            _send_drain(self._celery)
        except BrokerUnavailable:
            self._clear()  # no drain was sent: the next ring must try again
            raise

    def answer(self) -> None:
        self._clear()  # if it stays set, rows stored from now on wait for it to expire

    def _clear(self) -> None:
        try:
            self._command("DEL", BELL_KEY)
        except redis.RedisError:
            log.warning("inbox bell left set; it expires within %d s", BELL_TTL_MS // 1000)

    def _command(self, *args: str | bytes | int) -> Any:
        with self._lock:
            try:
                self._connection.send_command(*args)  # type: ignore[no-untyped-call]
                return self._connection.read_response()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                # The next command reconnects.
                self._connection.disconnect()  # type: ignore[no-untyped-call]
                raise redis.ConnectionError(str(exc)) from exc


DISPATCH_BELL_KEY = "relay:dispatch:bell"
# Long, like the inbox bell's: while a dispatch is outstanding, rings add nothing to the
# queue however slow the workers are; a lost one costs at most beat's next tick.
DISPATCH_BELL_TTL_MS = 30_000


class DispatchBell:
    """Rings ``relay.dispatch`` for work due at once, at most one outstanding on Redis.

    The same invariant as the inbox bell: a worker rings *after* committing the
    rows that are due, and the dispatch the bell sent clears it *before* it
    selects, so a ring that finds the bell set is answered by a dispatch that
    sees those rows. Beat's ticks leave the bell alone: were they to clear it,
    every tick would let one more rung dispatch into the queue behind the one
    still waiting there. Work due later needs no ring: beat's tick finds it. A failed ring costs at
    most one tick of latency (``RELAY_DISPATCH_INTERVAL_SECONDS``), never a row.
    """

    def __init__(self, celery: Celery, broker_url: str) -> None:
        self._celery = celery
        self._redis: redis.Redis | None = None
        if broker_url.startswith(("redis://", "rediss://", "unix://")):
            self._redis = redis.Redis.from_url(
                broker_url, socket_connect_timeout=2, socket_timeout=5
            )

    def ring(self) -> None:
        try:
            if self._redis and not self._redis.set(
                DISPATCH_BELL_KEY, b"1", nx=True, px=DISPATCH_BELL_TTL_MS
            ):
                return  # a dispatch is outstanding and has not cleared the bell yet
            request_dispatch(self._celery, rung=True)
        except (redis.RedisError, KombuError, OSError) as exc:
            self.answer()
            log.warning("could not ring the dispatcher (%s); beat's next tick will", exc)

    def answer(self) -> None:
        if self._redis is None:
            return
        try:
            self._redis.delete(DISPATCH_BELL_KEY)
        except redis.RedisError:
            log.warning("dispatch bell left set; beat's ticks dispatch until it expires")
