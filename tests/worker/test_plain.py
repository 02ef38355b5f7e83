"""The hot statements on psycopg's own connection (``worker.storage.plain``).

Each is compiled once and sent as its SQL; these tests hold that path to what
``Connection.execute`` gives for the same statement: the same rows and types, the
same errors (parameters hidden), the same listeners, a dropped connection
invalidated. On SQLite every statement takes SQLAlchemy's path (the rest of the
suite runs the pipeline on both).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, exc, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Executable

from tests.listening import listening
from tests.pipeline_world import World
from worker.pipeline import inbox, outbox, refresh, snapshots
from worker.storage import plain
from worker.storage.models import RefreshJob, Store
from worker.storage.upsert import rows_of

pytestmark = [
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
    pytest.mark.parametrize("world", ["salla"], indirect=True),
]


@dataclass
class Heard:
    before: list[str] = field(default_factory=list)  # every statement sent
    after: list[str] = field(default_factory=list)  # those SQLAlchemy's execution ran


@contextmanager
def heard(engine: Engine) -> Iterator[Heard]:
    found = Heard()

    def before(_connection: Any, _cursor: Any, sql: str, *_: Any) -> None:
        found.before.append(" ".join(sql.split()))

    def after(_connection: Any, _cursor: Any, sql: str, *_: Any) -> None:
        found.after.append(" ".join(sql.split()))

    with listening(engine, before_cursor_execute=before, after_cursor_execute=after):
        yield found


def refreshed(world: World[Any]) -> tuple[int, str]:
    """A Salla customer refreshed and delivered: (store id, customer id)."""
    (due,) = inbox.handle(world.runtime, world.platforms, world.post("order.created"))
    outbox.send_own(world.runtime, refresh.run(world.runtime, world.platforms, due.job_id))
    with world.runtime.sessions() as session:
        job = session.get_one(RefreshJob, due.job_id)
        return job.store_id, job.customer_id


def test_a_refresh_sends_its_hot_statements_on_the_driver(world: World[Any]) -> None:
    inbox_id = world.post("order.created")
    (due,) = inbox.handle(world.runtime, world.platforms, inbox_id)
    with heard(world.runtime.engine) as found:
        outbox.send_own(world.runtime, refresh.run(world.runtime, world.platforms, due.job_id))
    # the claim, the job done, the customer's row locked, the row written with the
    # change and the sinks read, the delivery with its attempt, the outcome: each is
    # heard by the engine's listeners, and none went through SQLAlchemy's execution
    assert [sql.split(" ")[:3] for sql in found.before] == [
        ["UPDATE", "refresh_jobs", "SET"],
        ["WITH", "resolved_held", "AS"],
        ["SELECT", "customer_points.store_id,", "customer_points.customer_id,"],
        ["WITH", "written_points", "AS"],
        ["WITH", "new_delivery", "AS"],
        ["WITH", "finished_attempt", "AS"],
    ]
    assert found.after == []


def test_the_driver_path_reads_what_sqlalchemy_reads(world: World[Any]) -> None:
    store_id, customer_id = refreshed(world)
    key = {"store": store_id, "customer": customer_id}
    cases: list[tuple[Executable, dict[str, Any]]] = [
        (snapshots._LOCKED_POINTS, key),  # Decimal as text, UTC datetimes, bytes, bool
        (outbox._ENABLED_SINKS, {"store": store_id}),  # JSON config and rules
        (refresh._STORE, {"store": store_id}),
        (refresh._FETCHED_AT, key),
    ]
    with world.runtime.engine.connect() as connection:
        for statement, params in cases:
            assert plain.is_plain(statement)
            theirs = connection.execute(statement, params).all()
            ours = plain.execute(connection, statement, params).all()
            assert theirs and ours == theirs, statement
            assert [r._mapping for r in ours] == [r._mapping for r in theirs]
            assert [type(v) for v in ours[0]] == [type(v) for v in theirs[0]]
            assert ours[0]._fields == theirs[0]._fields
    (points,) = theirs
    assert points[0].tzinfo is not None  # a UTC datetime, as ``UTCDateTime`` gives it


def job_of(world: World[Any]) -> int:
    (due,) = inbox.handle(world.runtime, world.platforms, world.post("order.created"))
    return due.job_id


_SET_STATUS = plain.hot(
    update(RefreshJob).where(RefreshJob.id == bindparam("job")).values(status=bindparam("to"))
)


def test_an_update_says_how_many_rows_it_changed(world: World[Any]) -> None:
    job_id = job_of(world)
    with heard(world.runtime.engine) as found, world.runtime.statement() as connection:
        assert rows_of(plain.execute(connection, _SET_STATUS, {"job": job_id, "to": "a"})) == 1
        assert rows_of(plain.execute(connection, _SET_STATUS, {"job": -1, "to": "b"})) == 0
    assert len(found.before) == 2 and found.after == []  # the driver's path


def test_a_failure_is_sqlalchemys_error_and_names_no_value(world: World[Any]) -> None:
    job_id = job_of(world)
    secret = "secret-" + "x" * 40  # refresh_jobs.status is 20 characters at most
    with heard(world.runtime.engine) as found, world.runtime.engine.connect() as connection:
        with pytest.raises(exc.DataError) as raised:
            plain.execute(connection, _SET_STATUS, {"job": job_id, "to": secret})
        assert isinstance(raised.value.orig, psycopg.errors.StringDataRightTruncation)
        assert secret not in str(raised.value)
        assert "[SQL parameters hidden due to hide_parameters=True]" in str(raised.value)
        assert "UPDATE refresh_jobs SET" in str(raised.value)
        connection.rollback()
        assert connection.execute(select(RefreshJob.status)).scalar() == "pending"
    assert found.after == [sql for sql in found.before if sql.startswith("SELECT")]


def test_a_connection_the_server_dropped_is_invalidated(world: World[Any]) -> None:
    store_id, _ = refreshed(world)
    with world.runtime.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with world.runtime.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(exc.OperationalError) as raised:
            plain.execute(connection, refresh._STORE, {"store": store_id})
        assert raised.value.connection_invalidated and connection.invalidated
    with world.runtime.engine.connect() as connection:  # the pool hands out a live one
        assert plain.execute(connection, refresh._STORE, {"store": store_id}).one().id == store_id


def test_what_sqlalchemy_must_finish_keeps_its_path(world: World[Any]) -> None:
    store_id, _ = refreshed(world)
    listed = plain.hot(select(Store.id).where(Store.id.in_(bindparam("ids", expanding=True))))
    unmarked = select(Store.id).where(Store.id == bindparam("store"))
    # stores.updated_at has an onupdate that SQLAlchemy computes at execution
    renamed = plain.hot(
        update(Store).where(Store.id == bindparam("store")).values(name=bindparam("name"))
    )
    with heard(world.runtime.engine) as found, world.runtime.engine.connect() as connection:
        assert plain.execute(connection, listed, {"ids": [store_id, -1]}).scalars().all() == [
            store_id
        ]
        assert plain.execute(connection, unmarked, {"store": store_id}).scalar() == store_id
        assert rows_of(plain.execute(connection, renamed, {"store": store_id, "name": "a"})) == 1
        assert connection.execute(select(Store.updated_at)).scalar() is not None
    assert len(found.after) == len(found.before) == 4
