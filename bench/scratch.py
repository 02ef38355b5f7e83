"""A scratch PostgreSQL database for a benchmark run, dropped however the run ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

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
