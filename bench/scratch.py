"""A scratch PostgreSQL database for a benchmark run, dropped however the run ends."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

ADMIN_URL = os.environ.get(
    "RELAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
            admin.execute(sql.SQL(drop).format(sql.Identifier(name)))


def module_at(revision: str, path: str, name: str) -> ModuleType:
    """``path`` as it is at ``revision`` (``git show <revision>:<path>``), loaded as
    module ``name``: a benchmark runs that code beside this checkout's on the same data."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{revision}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def bulk_load(connection: Connection, tables: Sequence[str]) -> Iterator[None]:
    """``tables`` bare while the caller fills them: their indexes and constraints
    (foreign keys into them included) dropped and the tables unlogged, then put back —
    each index built once by sorting the filled table rather than kept up row by row,
    no foreign-key check per row, no WAL for the rows (``ALTER TABLE … SET LOGGED``
    writes the filled table once). The caller then runs ``VACUUM ANALYZE``."""
    names = list(tables)
    constraints = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype"
            " FROM pg_constraint WHERE contype IN ('p', 'u', 'f')"
            " AND (conrelid::regclass::text = ANY(:t) OR confrelid::regclass::text = ANY(:t))"
            " ORDER BY contype = 'f' DESC"  # foreign keys first: they hang on the keys
        ),
        {"t": names},
    ).all()
    indexes = connection.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t)"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ),
        {"t": names},
    ).all()
    for table, name, _, _ in constraints:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        connection.execute(text(f'DROP INDEX "{name}"'))
    for table in names:
        connection.execute(text(f"ALTER TABLE {table} SET UNLOGGED"))
    yield
    for table in names:
        connection.execute(text(f"ALTER TABLE {table} SET LOGGED"))
    for table, name, definition, _ in reversed(constraints):  # keys before foreign keys
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    for _, definition in indexes:
        connection.execute(text(definition))
