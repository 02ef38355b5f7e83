"""The receiver's group commit (``web.ingest.InboxWriter``) against real PostgreSQL,
SQLite and Redis: batching, duplicates, the inbox bell, a stuck database, an
unreachable one, a broker that is down, and the lead always passing on."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import select

from tests.conftest import quiet_broker, relay_env
from web import ingest
from web.ingest import InboxWriter, Recorded, StoreUnavailable
from worker import dispatch
from worker.config import load_settings
from worker.pipeline import inbox
from worker.platforms.base import ReceivedEvent
from worker.runtime import Runtime, configure
from worker.storage.models import InboxEvent


def make_row(key: str, *, ignored: bool = False) -> dict[str, Any]:
    event = ReceivedEvent(
        event_type="order.created",
        store_ref="1234509876",
        dedupe_key=key.ljust(64, "0"),
        ignored_reason="not ours" if ignored else None,
    )
    return inbox.row("salla", json.dumps({"key": key}).encode(), event)


class CountingBell:
    """The real Redis bell, counting the rings it was asked for (one per batch)."""

    def __init__(self, bell: dispatch.InboxBell) -> None:
        self.bell, self.rings = bell, 0

    def ring(self) -> None:
        self.rings += 1
        self.bell.ring()

    def answer(self) -> None:
        self.bell.answer()


@pytest.fixture
def bell(runtime: Runtime) -> CountingBell:
    settings = runtime.settings
    return CountingBell(dispatch.inbox_bell(settings.broker_url))


@pytest.fixture
def writer(runtime: Runtime, bell: CountingBell) -> InboxWriter:
    return InboxWriter(runtime, bell)


@pytest.fixture
def drains(redis_url: str) -> Iterator[Callable[[], int]]:
    """How many ``relay.drain_inbox`` messages wait in the broker."""
    client = redis.Redis.from_url(redis_url)
    quiet_broker(redis_url)

    def waiting() -> int:
        messages = [json.loads(m) for m in client.lrange("events", 0, -1)]
        return [m["headers"]["task"] for m in messages].count(dispatch.DRAIN_INBOX)

    yield waiting
    client.close()


def stored(runtime: Runtime) -> dict[str, InboxEvent]:
    with runtime.sessions() as session:
        return {row.dedupe_key: row for row in session.scalars(select(InboxEvent))}


@pytest.fixture
def table_lock(runtime: Runtime) -> Iterator[Callable[[], Callable[[], None]]]:
    """Lock the inbox table from another connection: inserts wait (PostgreSQL only)."""
    url = runtime.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    holders: list[psycopg.Connection[Any]] = []

    def lock() -> Callable[[], None]:
        connection = psycopg.connect(url)
        connection.execute("LOCK TABLE inbox_events IN EXCLUSIVE MODE")
        holders.append(connection)
        return connection.rollback

    yield lock
    for connection in holders:
        connection.close()


# Holding a table lock from a second connection while inserts wait is PostgreSQL's.
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def blocked_inserts(runtime: Runtime) -> int:
    with runtime.engine.connect() as connection:
        query = (  # this test session's database only: other sessions may run beside it
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return int(connection.exec_driver_sql(query).scalar_one())


def test_it_stores_a_row_and_rings_the_inbox_bell(
    writer: InboxWriter, runtime: Runtime, bell: CountingBell, drains: Callable[[], int]
) -> None:
    recorded = writer.record(make_row("a"))
    assert recorded.queued and recorded.inbox_id == stored(runtime)["a".ljust(64, "0")].id
    assert drains() == 1
    # While that drain is outstanding, later rows need no message of their own ...
    assert writer.record(make_row("b")).queued and drains() == 1
    # ... and once a drain has answered the bell, the next row sends a new one.
    bell.answer()
    assert writer.record(make_row("c")).queued and drains() == 2


@postgresql_only
def test_rows_waiting_while_a_batch_is_written_go_in_one_batch(
    writer: InboxWriter,
    runtime: Runtime,
    bell: CountingBell,
    drains: Callable[[], int],
    table_lock: Callable[[], Callable[[], None]],
) -> None:
    unlock = table_lock()
    with ThreadPoolExecutor(max_workers=12) as pool:
        first = pool.submit(writer.record, make_row("first"))
        wait_for(lambda: blocked_inserts(runtime) == 1, "the leader's insert to wait")
        rest = [pool.submit(writer.record, make_row(f"r{i}")) for i in range(10)]
        wait_for(lambda: len(writer._waiting) == 10, "ten requests to queue behind it")
        unlock()
        outcomes = [first.result(timeout=10), *(f.result(timeout=10) for f in rest)]
    rows = stored(runtime)
    assert sorted(o.inbox_id for o in outcomes if o.inbox_id) == sorted(r.id for r in rows.values())
    assert len(rows) == 11
    # One ring for the leader's row, one for the ten that waited behind it, and
    # one drain message for both: the first drain had not answered yet.
    assert (bell.rings, drains()) == (2, 1)


@postgresql_only
def test_duplicates_in_one_batch_are_stored_once(
    writer: InboxWriter,
    runtime: Runtime,
    bell: CountingBell,
    table_lock: Callable[[], Callable[[], None]],
) -> None:
    unlock = table_lock()
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(writer.record, make_row("lead"))
        wait_for(lambda: blocked_inserts(runtime) == 1, "the leader's insert to wait")
        same = [pool.submit(writer.record, make_row("same")) for _ in range(4)]
        wait_for(lambda: len(writer._waiting) == 4, "the copies to queue")
        unlock()
        outcomes = [f.result(timeout=10) for f in same]
        first.result(timeout=10)
    assert [o.inbox_id is not None for o in outcomes].count(True) == 1
    assert [o.queued for o in outcomes].count(True) == 1
    assert len(stored(runtime)) == 2 and bell.rings == 2


def test_ignored_events_are_stored_but_never_rung(
    writer: InboxWriter, runtime: Runtime, bell: CountingBell, drains: Callable[[], int]
) -> None:
    recorded = writer.record(make_row("ignored", ignored=True))
    assert recorded.inbox_id is not None and not recorded.queued
    assert stored(runtime)["ignored".ljust(64, "0")].status == "ignored"
    assert (bell.rings, drains()) == (0, 0)


@postgresql_only
def test_a_request_stuck_behind_a_locked_table_gives_up_and_the_lead_survives(
    writer: InboxWriter,
    runtime: Runtime,
    table_lock: Callable[[], Callable[[], None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "WAIT_SECONDS", 0.3)
    unlock = table_lock()
    with ThreadPoolExecutor(max_workers=2) as pool:
        leader: Future[Recorded] = pool.submit(writer.record, make_row("leader"))
        wait_for(lambda: blocked_inserts(runtime) == 1, "the leader's insert to wait")
        with pytest.raises(StoreUnavailable):
            writer.record(make_row("impatient"))
        unlock()
        assert leader.result(timeout=10).inbox_id is not None
    # The request that gave up was never written (its platform retries it) ...
    assert "impatient".ljust(64, "0") not in stored(runtime)
    # ... and the next request leads a batch of its own instead of waiting forever.
    assert writer.record(make_row("next")).inbox_id is not None


def test_an_unreachable_database_fails_every_request_fast_and_recovers_nothing_twice(
    tmp_path: Path, redis_url: str
) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"
    down = configure(load_settings(relay_env(tmp_path, url, redis_url)))
    writer = InboxWriter(down, dispatch.inbox_bell(redis_url))
    failures: list[Exception] = []

    def attempt(index: int) -> None:
        try:
            writer.record(make_row(f"down{index}"))
        except StoreUnavailable as exc:
            failures.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(failures) == 8 and not any(thread.is_alive() for thread in threads)
    with pytest.raises(StoreUnavailable):  # still no leader stuck: the next one fails too
        writer.record(make_row("again"))


def test_a_broker_that_is_down_keeps_the_row_and_says_so(runtime: Runtime, tmp_path: Path) -> None:
    settings = load_settings(
        relay_env(tmp_path, runtime.settings.database_url, "redis://127.0.0.1:1/0")
    )
    writer = InboxWriter(runtime, dispatch.inbox_bell(settings.broker_url))
    recorded = writer.record(make_row("kept"))
    assert recorded.broker_down and not recorded.queued
    assert stored(runtime)["kept".ljust(64, "0")].status == "pending"  # the sweeper rings it


@postgresql_only
def test_a_connection_killed_under_the_writer_fails_one_batch_and_is_replaced(
    writer: InboxWriter, runtime: Runtime
) -> None:
    assert writer.record(make_row("before")).inbox_id is not None
    with runtime.engine.connect() as admin:  # e.g. a PostgreSQL restart or failover
        admin.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'INSERT INTO inbox_events%%'"
        )
    with pytest.raises(StoreUnavailable):
        writer.record(make_row("lost"))  # answered 503: the platform retries it
    assert writer.record(make_row("after")).inbox_id is not None
    assert set(stored(runtime)) == {key.ljust(64, "0") for key in ("before", "after")}
