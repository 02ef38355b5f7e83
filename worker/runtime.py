"""The process's shared resources, built once from ``Settings``.

The Flask app factory, the Celery app and the CLI each call ``configure()``
(tests call it with their own settings); everything else asks ``current()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings, load_settings
from worker.crypto import Cipher
from worker.http import shared_client
from worker.storage.db import make_engine, make_sessionmaker, transaction


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cipher: Cipher

    @property
    def http(self) -> httpx.Client:
        return shared_client(self.settings.http_timeout_seconds)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.sessions) as session:
            yield session


_lock = threading.Lock()
_current: Runtime | None = None


def configure(settings: Settings | None = None, *, pool_size: int = 5) -> Runtime:
    global _current
    settings = settings or load_settings()
    engine = make_engine(settings.database_url, pool_size=pool_size)
    runtime = Runtime(settings, engine, make_sessionmaker(engine), Cipher(settings.secret_key))
    with _lock:
        previous, _current = _current, runtime
    if previous is not None and previous.engine is not engine:
        previous.engine.dispose()
    return runtime


def current() -> Runtime:
    with _lock:
        runtime = _current
    return runtime if runtime is not None else configure()


def configure_none() -> None:
    """Forget the current runtime and close its connections (tests, shutdown)."""
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None:
        previous.engine.dispose()
