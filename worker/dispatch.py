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

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import redis
from kombu.exceptions import KombuError

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

HANDLE_EVENT = "relay.handle_event"
DRAIN_INBOX = "relay.drain_inbox"
REFRESH_POINTS = "relay.refresh_points"
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
    DELIVER: "deliveries",
    DELIVER_MANY: "deliveries",
    SWEEP: "events",
    EXPIRY_NOTICES: "events",
    RECONCILE: "events",
    REFRESH_TOKENS: "events",
    RETENTION: "events",
}

BELL_KEY = "relay:inbox:bell"
SENT_AT = "relay_sent_at"  # a header: when the message was published (``worker.queues``)
BELL_TTL_MS = 30_000


class BrokerUnavailable(Exception):
    """The doorbell could not be rung: what was stored waits for the sweeper."""


def enqueue(app: Celery, name: str, row_id: int | str, countdown: float = 0.0) -> None:
    app.send_task(
        name,
        args=(row_id,),
        queue=QUEUES[name],
        countdown=countdown if countdown > 0 else None,
        retry=False,
        headers={SENT_AT: time.time()},
    )


def enqueue_many(app: Celery, name: str, row_ids: list[str], countdown: float = 0.0) -> None:
    """One message for a chunk of rows (the scheduler's thousands of deliveries)."""
    app.send_task(
        name,
        args=(row_ids,),
        queue=QUEUES[name],
        countdown=countdown if countdown > 0 else None,
        retry=False,
        headers={SENT_AT: time.time()},
    )


class InboxBell(Protocol):
    def ring(self) -> None:
        """Make sure a drain is outstanding; raise ``BrokerUnavailable``."""

    def answer(self) -> None:
        """Called by a drain before it claims rows: the next ring sends a new one."""


def inbox_bell(broker_url: str) -> InboxBell:
    publisher = DrainPublisher(broker_url)
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBell(publisher, broker_url)
    return EveryTimeBell(publisher)


class DrainPublisher:
    """Publishes ``relay.drain_inbox`` with kombu alone, as Celery's ``send_task`` would.

    The receiver's only message is this one, so it does not load the Celery
    application for it (about 3 MB of each web process, ``bench/web_memory.py``):
    the message is Celery's task protocol 2, built here — the headers
    ``send_task`` writes, a body of ``[args, kwargs, embed]`` in JSON — and
    published to the default exchange with the queue's name as routing key, as
    Celery does. ``tests/worker/test_dispatch.py`` compares it with Celery's own
    and has a real worker run it. One connection, kept and reopened after a
    failure; short timeouts, no retries (a failed ring is the caller's 503).
    """

    def __init__(self, broker_url: str) -> None:
        self._url = broker_url
        self._connection: Any = None
        self._lock = threading.Lock()

    def send(self) -> None:
        with self._lock:
            try:
                body, options = drain_message()
                self._producer().publish(body, **options)
            except (KombuError, OSError, redis.RedisError) as exc:
                self._close()
                raise BrokerUnavailable(str(exc)) from exc

    def _producer(self) -> Any:
        from kombu import Connection

        if self._connection is None:
            options = {"socket_connect_timeout": 2, "socket_timeout": 5}
            redis_url = self._url.startswith(("redis://", "rediss://", "unix://"))
            self._connection = Connection(
                self._url, connect_timeout=2, transport_options=options if redis_url else {}
            )
        return self._connection.Producer()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.release()
            self._connection = None


def drain_message() -> tuple[str, dict[str, Any]]:
    """``relay.drain_inbox`` in Celery's task protocol 2: (body, publish options)."""
    task_id = str(uuid.uuid4())
    headers = {
        "lang": "py", "task": DRAIN_INBOX, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None, "argsrepr": "()",
        "kwargsrepr": "{}", "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None,
        "stamps": {}, SENT_AT: time.time(),
    }  # fmt: skip
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    options = {
        "exchange": "",
        "routing_key": QUEUES[DRAIN_INBOX],
        "headers": headers,
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "correlation_id": task_id,
        "delivery_mode": 2,
        "retry": False,
    }
    return json.dumps([[], {}, embed]), options


class EveryTimeBell:
    """Brokers other than Redis (the embedded SQLite one): one drain per ring."""

    def __init__(self, publisher: DrainPublisher) -> None:
        self._publisher = publisher

    def ring(self) -> None:
        self._publisher.send()

    def answer(self) -> None:
        pass


class RedisBell:
    """At most one drain outstanding, kept by a key beside the broker's queues.

    The bell talks over one connection of its own, without redis-py's pool and
    retry layers: a ring is one short command per batch on the receiver's hot
    path, and a failed one is answered by the caller (503, then the sweeper).
    """

    def __init__(self, publisher: DrainPublisher, url: str) -> None:
        self._publisher = publisher
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
            self._publisher.send()
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
