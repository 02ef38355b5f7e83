"""The broker's queues as gauges: how many messages wait, and for how long.

``relay_queue_depth{queue}`` is the list's length on Redis (kombu keeps a
queue's priority levels in lists of their own, all summed here);
``relay_queue_oldest_seconds{queue}`` the age of the message a worker would
take next, the list's tail, from the ``relay_sent_at`` header every publisher
of ours sets (``worker.dispatch``): Celery's own headers carry no send time. A
message published by something else counts in the depth, not in the age. Both
are a few commands per queue at scrape time, whatever the depth, sent in one
round trip over the web process's own Redis connection (``worker.redis_wire``).

Only Redis is read: the embedded SQLite broker serves one machine, where the
tables' gauges (``relay_oldest_pending_seconds``) say the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from worker.config import Settings
from worker.dispatch import QUEUES, REDIS_SCHEMES, SENT_AT
from worker.redis_wire import RedisWire

PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: "<queue>\x06\x16<priority>"
PRIORITY_STEPS = (0, 3, 6, 9)
QUEUE_NAMES = tuple(sorted(set(QUEUES.values())))


def oldest_age(tail: bytes | None, now: float) -> float:
    """Seconds since the message at the queue's tail was sent (0 when unknown)."""
    if not tail:
        return 0.0
    try:
        sent = float(json.loads(tail)["headers"][SENT_AT])
    except (ValueError, KeyError, TypeError):
        return 0.0
    return max(0.0, now - sent)


class QueueGauges:
    """A collector: depth and oldest age of each of our queues on Redis."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.broker_url
        self._wire = RedisWire(settings.broker_url)

    def collect(self) -> Iterator[Any]:
        if not self._url.startswith(REDIS_SCHEMES):
            return
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily("relay_queue_depth", "Messages waiting", labels=["queue"])
        oldest = GaugeMetricFamily(
            "relay_queue_oldest_seconds", "Age of the next message to be taken", labels=["queue"]
        )
        now = time.time()
        for queue, (length, tail) in zip(QUEUE_NAMES, self._read(), strict=True):
            depth.add_metric([queue], length)
            oldest.add_metric([queue], oldest_age(tail, now))
        yield from (depth, oldest)

    def _read(self) -> list[tuple[int, bytes | None]]:
        return read_lists(self._wire, QUEUE_NAMES)


def read_lists(wire: RedisWire, queues: Sequence[str]) -> list[tuple[int, bytes | None]]:
    """(length over its priority lists, tail message) per queue, in one round trip."""
    commands: list[tuple[str | bytes | int, ...]] = []
    for queue in queues:
        commands += [("LLEN", name) for name in _lists(queue)]
        commands.append(("LINDEX", queue, -1))
    replies = iter(wire.pipeline(commands))
    read = []
    for _ in queues:
        length = sum(_integer(next(replies)) for _ in PRIORITY_STEPS)
        tail = next(replies)
        read.append((length, tail if isinstance(tail, bytes) else None))
    return read


def _integer(reply: object) -> int:
    return reply if isinstance(reply, int) else 0


def _lists(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
