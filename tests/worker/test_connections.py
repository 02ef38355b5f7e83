"""Without a pre-ping, a pooled connection the server closed is replaced at checkout."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from worker.runtime import Runtime


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_the_server_closed_is_replaced_at_checkout(runtime: Runtime) -> None:
    with runtime.transaction() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    url = runtime.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as other:  # as a restart would, to this one
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        alive = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid = %s"
        for _ in range(100):
            if other.execute(alive, (pid,)).fetchone() is None:
                break
            time.sleep(0.05)
    with runtime.transaction() as session:  # no error: the pool connected anew
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
