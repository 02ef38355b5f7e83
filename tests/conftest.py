"""Shared fixtures: real PostgreSQL and Redis on 127.0.0.1, SQLite in a temp dir.

Each test session creates its own PostgreSQL database (so parallel runs never
collide) and uses its own Redis database number; both are dropped at the end.
Set RELAY_TEST_POSTGRES_URL / RELAY_TEST_REDIS_URL to point elsewhere.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text

from worker import runtime as runtime_module
from worker.config import Settings, load_settings
from worker.dispatch import BELL_KEY, DISPATCH_BELL_KEY
from worker.runtime import Runtime
from worker.sandbox.server import RunningServer, serve_in_thread
from worker.storage.migrate import upgrade
from worker.storage.models import Base

ADMIN_URL = os.environ.get(
    "RELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("RELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SALLA_SECRET = "salla-app-webhook-secret"
TEST_SECRET_KEY = (
    "bG95YWx0eS1yZWxheSB0ZXN0IGtleSAzMiBieXRlcyE="  # a Fernet key: 32 bytes, URL-safe base64
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"relay_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    runtime_module.configure_none()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SESSION_KEY = "relay:test-session"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database number no other test session holds (13-15 are left to benchmarks)."""
    for number in [1 + (os.getpid() + n) % 12 for n in range(12)]:
        url = f"{REDIS_BASE}/{number}"
        client = redis.Redis.from_url(url)
        if client.set(SESSION_KEY, os.getpid(), nx=True, ex=3600):
            break
        client.close()
    else:
        raise RuntimeError("every Redis test database 1-12 is held by another test session")
    client.flushdb()
    client.set(SESSION_KEY, os.getpid(), ex=3600)
    yield url
    client.flushdb()
    client.close()


def relay_env(data_dir: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "RELAY_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RELAY_SECRET_KEY": TEST_SECRET_KEY,
        "SALLA_WEBHOOK_SECRET": SALLA_SECRET,
        "SALLA_CLIENT_ID": "client-id",
        "SALLA_CLIENT_SECRET": "client-secret",
        "RELAY_DEBOUNCE_SECONDS": "0",
        "RELAY_SETTLE_DELAYS": "",
        "RELAY_RETRY_BASE_SECONDS": "0.2",
        "RELAY_RETRY_MAX_SECONDS": "1",
        "RELAY_ALLOW_PRIVATE_URLS": "1",  # the sandboxes listen on 127.0.0.1
        **extra,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relay.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


def quiet_broker(redis_url: str) -> None:
    """No message and no bell (inbox, dispatcher) left over from an earlier test."""
    client = redis.Redis.from_url(redis_url)
    client.delete("events", "refresh", "deliveries", BELL_KEY, DISPATCH_BELL_KEY)
    client.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    quiet_broker(redis_url)
    return load_settings(relay_env(tmp_path, database_url, redis_url))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    current = runtime_module.configure(settings)
    upgrade(current.engine)
    yield current
    truncate(current)
    runtime_module.configure_none()
    current.engine.dispose()  # a test may have configured another runtime over this one


def truncate(current: Runtime) -> None:
    with current.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
def serve() -> Iterator[Callable[[Any], RunningServer]]:
    """Serve WSGI apps over real HTTP on 127.0.0.1 until the test ends."""
    running: list[RunningServer] = []

    def start(app: Any) -> RunningServer:
        server = serve_in_thread(app)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def world(
    request: pytest.FixtureRequest, runtime: Runtime, serve: Callable[[Any], RunningServer]
) -> Any:
    """A platform's pipeline world (``tests.pipeline_world``), by name, indirectly:
    ``pytest.mark.parametrize("world", ["zid"], indirect=True)``."""
    from tests.pipeline_world import make_world  # it imports this module

    return make_world(request.param, runtime, serve)
