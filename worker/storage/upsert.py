"""INSERT … ON CONFLICT DO NOTHING for PostgreSQL and SQLite, the basis of
every dedupe in the service (inbox, coalesced refresh jobs, budgets)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Executable, Result, Table, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from worker.storage import plain
from worker.storage.models import Base


def insert_ignore(session: Session, model: type[Base], values: dict[str, Any]) -> Any | None:
    """Insert one row unless it breaks a unique constraint; return its primary key or None."""
    statement = _insert(session, model).values(**values).on_conflict_do_nothing()
    primary_key = model.__mapper__.primary_key[0]
    result = session.execute(statement.returning(primary_key))
    return result.scalar_one_or_none()


def insert_ignore_many(
    session: Session, model: type[Base], rows: list[dict[str, Any]]
) -> list[Any]:
    """Insert many rows in one statement, skipping those that break a unique
    constraint; return the primary keys of the rows inserted."""
    primary_key = model.__mapper__.primary_key[0]
    return [row[0] for row in insert_ignore_returning(session, model, rows, primary_key)]


def insert_ignore_returning(
    session: Session, model: type[Base], rows: list[dict[str, Any]], *columns: Any
) -> list[tuple[Any, ...]]:
    """``insert_ignore_many`` returning ``columns`` of each row inserted, so that a
    caller can tell which of its rows went in (one round trip for a whole batch).

    The rows go as the parameters of one statement built once per table and columns,
    not as a VALUES list built into it: SQLAlchemy then sends them in multi-row
    batches ("insertmanyvalues") from a statement compiled once, where a statement
    of its own per batch cost as much CPU to compile as to run. Every row names
    the same columns."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    names = tuple(getattr(column, "key", column) for column in columns)
    statement = _insert_ignoring(dialect, model.__table__, names)
    return [tuple(row) for row in execute(session, statement, rows)]


@functools.cache
def _insert_ignoring(dialect: str, table: Table, returning: tuple[str, ...]) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"no ON CONFLICT support for {dialect}")
    return insert(table).on_conflict_do_nothing().returning(*[table.c[n] for n in returning])


def _insert(session: Session, model: type[Base]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no ON CONFLICT support for {dialect}")


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE and say how many rows it changed: the basis of every claim."""
    result = execute(session, statement)
    assert isinstance(result, CursorResult)
    return result.rowcount


def execute(
    session: Session,
    statement: Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Result[Any]:
    """``session.execute`` for a statement that loads no objects (an UPDATE, a DELETE,
    a SELECT of columns), on the session's connection directly while the session holds
    no objects: there is then nothing to flush first and nothing to keep in step with
    the statement, and the ORM's passage costs about as much CPU as the statement's own
    round trip (``bench/worker.py`` profiles). A session holding objects takes the
    ORM's path, so that they are flushed first and updated with it.

    ``params`` go with a statement built once (``bindparam``): building one costs
    about as much again as running it."""
    if holds_objects(session):
        return session.execute(statement, params)
    if isinstance(params, Mapping):  # a statement marked ``plain`` may go on the driver's path
        return plain.execute(session.connection(), statement, params)
    return session.connection().execute(statement, params)


def rows_of(result: Result[Any]) -> int:
    """How many rows the statement of ``result`` changed (either path of ``execute``)."""
    assert isinstance(result, CursorResult | plain.PlainResult)
    return result.rowcount


def holds_objects(session: Session) -> bool:
    """Whether the session has objects a statement on its connection could miss."""
    return bool(session.identity_map or session.new or session.deleted)


def one_of(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN (…)`` for a fixed list of constants (statuses), each its own bound
    parameter of the statement. ``column.in_(values)`` binds the list as one
    "expanding" parameter instead, which SQLAlchemy renders into the SQL text again
    at every execution: a tenth of a claim's CPU, for a list that never changes."""
    return column.in_([literal(value, type_=column.type) for value in values])
