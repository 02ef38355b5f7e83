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

import base64
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from worker.redis_wire import RedisWire, WireError

if TYPE_CHECKING:
    from celery import Celery

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

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
BELL_KEY = "relay:inbox:bell"
SENT_AT = "relay_sent_at"  # a header: when the message was published (``worker.queues``)
BELL_TTL_MS = 30_000


class BrokerUnavailable(Exception):
    """The doorbell could not be rung: what was stored waits for the sweeper."""


def enqueue(app: Celery, name: str, row_id: int | str, countdown: float = 0.0) -> None:
    """Publish a row that is due now. One due later (``countdown`` > 0) is not
    published: its row holds the time, and the dispatcher hands it out then."""
    if countdown <= 0:
        app.send_task(
            name, args=(row_id,), queue=QUEUES[name], retry=False, headers={SENT_AT: time.time()}
        )


def enqueue_many(app: Celery, name: str, row_ids: Sequence[int | str]) -> None:
    """One message for a chunk of rows that are due now (the dispatcher's batches)."""
    app.send_task(
        name, args=(list(row_ids),), queue=QUEUES[name], retry=False, headers={SENT_AT: time.time()}
    )


Chunk = tuple[str, Sequence[int | str]]  # a task's name, and the row ids its message carries


def enqueue_chunks(app: Celery, broker_url: str, chunks: Sequence[Chunk]) -> None:
    """``enqueue_many`` for every chunk of a dispatch. On Redis the messages are built
    here (``task_message``, as ``send_task`` builds them) and pushed in one round trip,
    an ``LPUSH`` of all a queue's messages (in order: the first is taken first);
    ``send_task`` for each cost a dispatch a third of its CPU (a message built by
    Celery, a redis-py client built by kombu, a round trip). All or none go: a
    refused push raises ``BrokerUnavailable`` and the caller's transaction leaves the
    rows unmarked. Elsewhere (the embedded broker), ``send_task`` for each."""
    if not chunks:
        return
    if not broker_url.startswith(REDIS_SCHEMES):
        for name, row_ids in chunks:
            enqueue_many(app, name, row_ids)
        return
    by_queue: dict[str, list[bytes]] = {}
    for name, row_ids in chunks:
        body, options = task_message(name, [list(row_ids)])
        by_queue.setdefault(QUEUES[name], []).append(redis_envelope(body, options))
    try:
        _process_wire(broker_url).pipeline(
            [("LPUSH", queue, *messages) for queue, messages in by_queue.items()]
        )
    except (OSError, WireError) as exc:
        raise BrokerUnavailable(str(exc)) from exc


_wires: dict[tuple[int, str], RedisWire] = {}
_wires_lock = threading.Lock()


def _process_wire(broker_url: str) -> RedisWire:
    """This process's connection for its pushes (a forked child opens its own)."""
    key = (os.getpid(), broker_url)
    with _wires_lock:
        wire = _wires.get(key)
        if wire is None:
            wire = _wires[key] = RedisWire(broker_url)
        return wire


def request_dispatch(app: Celery, *, rung: bool = False) -> None:
    """Ask for a ``relay.dispatch`` now (ops, the sweeper): rows made due are sent.
    ``rung``: the bell's own, which clears the bell (``DispatchBell``)."""
    app.send_task(
        DISPATCH,
        kwargs={"rung": rung},
        queue=QUEUES[DISPATCH],
        retry=False,
        headers={SENT_AT: time.time()},
    )


class InboxBell(Protocol):
    def ring(self) -> None:
        """Make sure a drain is outstanding; raise ``BrokerUnavailable``."""

    def answer(self) -> None:
        """Called by a drain before it claims rows: the next ring sends a new one."""


class DrainSender(Protocol):
    def send(self) -> None:
        """Publish one ``relay.drain_inbox``; raise ``BrokerUnavailable``."""


def inbox_bell(broker_url: str) -> InboxBell:
    if broker_url.startswith(REDIS_SCHEMES):
        return RedisBell(RedisDrainPublisher(broker_url), broker_url)
    return EveryTimeBell(DrainPublisher(broker_url))


def drain_publisher(broker_url: str) -> DrainSender:
    """What publishes a drain on this broker, without the Celery application."""
    if broker_url.startswith(REDIS_SCHEMES):
        return RedisDrainPublisher(broker_url)
    return DrainPublisher(broker_url)


class DrainPublisher:
    """Publishes ``relay.drain_inbox`` with kombu alone (the embedded broker).

    The receiver's only message is this one, so it does not load the Celery
    application for it (about 3 MB of each web process, ``bench/web_memory.py``):
    the message is Celery's task protocol 2, built by ``drain_message`` — the
    headers ``send_task`` writes, a body of ``[args, kwargs, embed]`` in JSON —
    published to the default exchange with the queue's name as routing key, as
    Celery does. On Redis, ``RedisDrainPublisher`` pushes the same message as
    kombu's Redis transport stores it, without kombu or redis-py.
    ``tests/worker/test_dispatch.py`` compares both with Celery's own message,
    and a real worker runs them (``tests/test_end_to_end.py``). One connection,
    kept and reopened after a failure; short timeouts, no retries (a failed
    ring is the caller's 503).
    """

    def __init__(self, broker_url: str) -> None:
        self._url = broker_url
        self._connection: Any = None
        self._lock = threading.Lock()

    def send(self) -> None:
        from kombu.exceptions import KombuError

        with self._lock:
            try:
                body, options = drain_message()
                self._producer().publish(body, **options)
            except (KombuError, OSError) as exc:
                self._close()
                raise BrokerUnavailable(str(exc)) from exc

    def _producer(self) -> Any:
        from kombu import Connection

        if self._connection is None:
            self._connection = Connection(self._url, connect_timeout=2)
        return self._connection.Producer()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.release()
            self._connection = None


def drain_message() -> tuple[str, dict[str, Any]]:
    """``relay.drain_inbox`` in Celery's task protocol 2: (body, publish options)."""
    return task_message(DRAIN_INBOX)


def task_message(name: str, args: Sequence[Any] = ()) -> tuple[str, dict[str, Any]]:
    """Task ``name`` with positional ``args`` (JSON values) in Celery's task protocol 2,
    as ``send_task(name, args=args, queue=QUEUES[name])`` writes it: (body, options)."""
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": repr(tuple(args)),
        "kwargsrepr": "{}", "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None,
        "stamps": {}, SENT_AT: time.time(),
    }  # fmt: skip
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    options = {
        "exchange": "",
        "routing_key": QUEUES[name],
        "headers": headers,
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "correlation_id": task_id,
        "delivery_mode": 2,
        "retry": False,
    }
    return json.dumps([list(args), {}, embed]), options


class RedisDrainPublisher:
    """``relay.drain_inbox`` pushed onto its queue's list as kombu's Redis transport
    stores a message (a JSON envelope, the body base64-encoded): one ``LPUSH``."""

    def __init__(self, broker_url: str) -> None:
        self._wire = RedisWire(broker_url)

    def send(self) -> None:
        body, options = drain_message()
        try:
            self._wire.call("LPUSH", options["routing_key"], redis_envelope(body, options))
        except (OSError, WireError) as exc:
            raise BrokerUnavailable(str(exc)) from exc


def redis_envelope(body: str, options: dict[str, Any]) -> bytes:
    """The message as kombu's Redis transport keeps it in a queue's list."""
    properties = {
        "correlation_id": options["correlation_id"],
        "delivery_mode": options["delivery_mode"],
        "delivery_info": {"exchange": options["exchange"], "routing_key": options["routing_key"]},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": options["content_encoding"],
        "content-type": options["content_type"],
        "headers": options["headers"],
        "properties": properties,
    }
    return json.dumps(envelope).encode()


class EveryTimeBell:
    """Brokers other than Redis (the embedded SQLite one): one drain per ring."""

    def __init__(self, publisher: DrainSender) -> None:
        self._publisher = publisher

    def ring(self) -> None:
        self._publisher.send()

    def answer(self) -> None:
        pass


class RedisBell:
    """At most one drain outstanding, kept by a key beside the broker's queues.

    The bell talks over one connection of its own (``worker.redis_wire``), with
    no pool and no retries: a ring is one short command per batch on the
    receiver's hot path, and a failed one is answered by the caller (503, then
    the sweeper).
    """

    def __init__(self, publisher: DrainSender, url: str) -> None:
        self._publisher = publisher
        self._wire = RedisWire(url)

    def ring(self) -> None:
        try:
            if self._wire.call("SET", BELL_KEY, b"1", "NX", "PX", BELL_TTL_MS) is None:
                return  # a drain is outstanding and has not cleared the bell yet
        except (OSError, WireError) as exc:
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
            self._wire.call("DEL", BELL_KEY)
        except (OSError, WireError):
            log.warning("inbox bell left set; it expires within %d s", BELL_TTL_MS // 1000)


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
        self._wire = RedisWire(broker_url) if broker_url.startswith(REDIS_SCHEMES) else None

    def ring(self) -> None:
        from kombu.exceptions import KombuError

        try:
            if self._wire and not self._wire.call(
                "SET", DISPATCH_BELL_KEY, b"1", "NX", "PX", DISPATCH_BELL_TTL_MS
            ):
                return  # a dispatch is outstanding and has not cleared the bell yet
            request_dispatch(self._celery, rung=True)
        except (WireError, KombuError, OSError) as exc:
            self.answer()
            log.warning("could not ring the dispatcher (%s); beat's next tick will", exc)

    def answer(self) -> None:
        if self._wire is None:
            return
        try:
            self._wire.call("DEL", DISPATCH_BELL_KEY)
        except (OSError, WireError):
            log.warning("dispatch bell left set; beat's ticks dispatch until it expires")
