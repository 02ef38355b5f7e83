"""Engines and sessions. SQLite (embedded) gets WAL and a busy timeout so the
web process and the worker can write at the same time."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 5, pre_ping: bool = False) -> Engine:
    """``hide_parameters``: a failed statement's error names the SQL, never the bound
    values (customer emails, tokens), wherever the exception ends up."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite's own BEGIN is deferred; take the write lock up front so that
        # read-then-write transactions never deadlock between processes.
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # No pre-ping by default: a round trip before every transaction was a sixth of
    # a refresh's statements. A connection the server has closed (a restart, an
    # idle timeout) is found at checkout without one: see ``_closed_by_server``.
    engine = create_engine(
        url,
        pool_pre_ping=pre_ping,
        pool_recycle=300,
        pool_size=pool_size,
        max_overflow=pool_size,
        hide_parameters=True,
    )
    if not pre_ping:
        event.listen(engine, "checkout", _closed_by_server)
    return engine


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A checked-in PostgreSQL connection has nothing to read, unless the server
    closed it (a restart sends a FATAL message, then EOF). One non-blocking poll
    instead of a ``SELECT 1``; ``DisconnectionError`` makes the pool connect anew."""
    try:
        poller = select.poll()  # not select.select: a web process holds fds past 1024
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        closed = bool(poller.poll(0))
    except (OSError, ValueError):
        closed = True
    if closed:
        raise exc.DisconnectionError("the server closed this connection")


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" hook issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session
