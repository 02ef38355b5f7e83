"""The refresh's hot statements, compiled once and run on psycopg itself.

SQLAlchemy's passage around a statement it has already compiled and cached — the
execution context, the parameters built anew from the compiled form, the result's
metadata and rows — costs about as much CPU as psycopg's own work for it: the
refresh's claim took about 410 µs of CPU through ``Connection.execute`` and 206 µs
here. A refresh runs a handful of such statements, each
a module constant with bound parameters, so those marked ``hot()`` are
compiled once per dialect and, on PostgreSQL with psycopg, sent as that SQL with
their parameters on the connection's own driver connection, inside the
connection's transaction (begun first when there is none, as SQLAlchemy begins
one, so that its commit and rollback are the statement's; an autocommit
connection, ``Runtime.statement``'s, has none to begin).

What SQLAlchemy would do for them is kept: each parameter goes through its type's
bind processor and each returned column through its result processor
(``worker.storage.types``), the engine's ``before_cursor_execute`` listeners hear
every statement (the statement counts in tests and ``bench/``), a failure is
raised as SQLAlchemy's ``DBAPIError`` with the parameters hidden, and a connection
the server dropped is invalidated, as ``Connection.execute`` does. Anything else —
SQLite, another driver, a list of parameter sets, an unmarked statement — takes
SQLAlchemy's path unchanged. ``tests/worker/test_plain.py`` holds both paths to the
same rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, exc
from sqlalchemy.engine import IteratorResult, Result
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled

S = TypeVar("S", bound=Executable)
Processor = Callable[[Any], Any]

_MARKED: dict[int, Executable] = {}  # id → the statement, held so that its id stays its own
_PLANS: dict[tuple[int, str], _Plan | None] = {}
_lock = threading.Lock()


def hot(statement: S) -> S:
    """Mark a module-constant statement for the driver's path; returns it unchanged."""
    _MARKED[id(statement)] = statement
    return statement


def is_plain(statement: Executable) -> bool:
    return _MARKED.get(id(statement)) is statement


class PlainResult(IteratorResult[Any]):
    """The rows, as SQLAlchemy's results give them, and how many rows the statement changed."""

    rowcount: int


@dataclass(frozen=True)
class _Plan:
    sql: str
    constants: dict[str, Any]  # the statement's own values (literals, ``one_of`` lists)
    binds: tuple[tuple[str, Processor], ...]  # the parameters that need converting
    columns: SimpleResultMetaData  # the columns returned, shared by every result
    results: tuple[Processor | None, ...]


def execute(
    connection: Connection, statement: Executable, params: Mapping[str, Any]
) -> Result[Any]:
    """``connection.execute(statement, params)``, on the driver's path when it may."""
    if connection.dialect.driver != "psycopg" or not is_plain(statement):
        return connection.execute(statement, params)
    plan = _plan(statement, connection.dialect)
    if plan is None:
        return connection.execute(statement, params)
    values = plan.constants | dict(params)
    for name, processor in plan.binds:
        if name in values:
            values[name] = processor(values[name])
    driver = connection.connection.driver_connection
    if not (driver.autocommit or connection.in_transaction()):  # type: ignore[union-attr]
        connection.begin()  # as SQLAlchemy's own execution begins one: its commit and rollback
    dispatch = connection.dispatch.before_cursor_execute
    if dispatch:
        dispatch(connection, None, plan.sql, values, None, False)
    try:
        with driver.execute(plan.sql, values) as cursor:  # type: ignore[union-attr]
            rows = cursor.fetchall() if plan.results else []  # (``description`` costs)
            changed = cursor.rowcount
    except connection.dialect.loaded_dbapi.Error as error:
        raise _translated(connection, plan.sql, values, error) from error
    if any(plan.results):
        processors = plan.results
        rows = [
            tuple(p(v) if p else v for p, v in zip(processors, row, strict=True)) for row in rows
        ]
    result = PlainResult(plan.columns, iter(rows))
    result.rowcount = changed
    return result


def _translated(
    connection: Connection, sql: str, values: dict[str, Any], error: Exception
) -> exc.StatementError:
    """The error as ``Connection.execute`` raises it; a dropped connection invalidated."""
    dialect = connection.dialect
    driver = connection.connection.dbapi_connection
    if dialect.is_disconnect(error, driver, None):  # type: ignore[arg-type]
        connection.invalidate(error)
    return exc.DBAPIError.instance(
        sql, values, error, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect,
        connection_invalidated=connection.invalidated,
    )  # fmt: skip


def _plan(statement: Executable, dialect: Dialect) -> _Plan | None:
    key = (id(statement), dialect.name)
    if key not in _PLANS:
        with _lock:
            if key not in _PLANS:
                _PLANS[key] = _compile(statement, dialect)
    return _PLANS[key]


def _compile(statement: Executable, dialect: Dialect) -> _Plan | None:
    """None for a statement whose SQL or values are finished only at execution (an
    expanding ``IN`` list, a column's Python-side default): SQLAlchemy's path runs it."""
    compiled: Compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    binds = {name: bind for bind, name in compiled.bind_names.items()}  # type: ignore[attr-defined]
    if any(bind.expanding for bind in binds.values()) or "POSTCOMPILE" in compiled.string:
        return None
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        return None  # a Python-side default or onupdate, computed by SQLAlchemy at execution
    constants = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    processors = []
    for name, bind in binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((name, processor))
    columns = list(getattr(statement, "exported_columns", ()))
    names = tuple(column.name for column in columns)
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    metadata = SimpleResultMetaData(names)
    return _Plan(compiled.string, constants, tuple(processors), metadata, results)
