"""kombu's Redis transport, with one client per channel for its own commands.

kombu 5's Redis channel builds a new ``redis.Redis`` object for every command it
sends outside its consumer's ``BRPOP`` (``Channel.conn_or_acquire``): the ack of
each message (``QoS._remove_from_indices``), the bookkeeping of each delivered
one (``QoS.append``), each publish. A ``redis.Redis`` is only a front on the
channel's connection pool, but its constructor copies every response callback
into a new case-insensitive dict, about 0.15 ms of CPU each time (measured alone):
two per task in the worker's parent process, 15 % of that process's CPU and 2 % of
the worker's in ``bench/worker.py``'s profile.
This channel keeps one client per pool and hands it out again; the client takes
a connection from the same pool for each command, as kombu's would (redis-py's
clients are safe to share between threads). When kombu drops its pools (after
a fork, on a disconnect), the next command builds a client on the new pool.

Used for ``redis://`` brokers only (``worker.celery_app.celery_config``): for
``rediss://`` kombu chooses TLS settings by the transport's name, which a class
of our own would not carry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis

TRANSPORT = "worker.broker_redis:Transport"


class Channel(redis.Channel):
    _kept_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool, kept = self.pool, self._kept_client
        if kept is None or kept.connection_pool is not pool:
            kept = self._kept_client = self._create_client()  # type: ignore[attr-defined]
        yield kept


class Transport(redis.Transport):
    Channel = Channel
