"""The process's shared resources, built once from ``Settings``.

The Flask app factory, the Celery app and the CLI each call ``configure()``
(tests call it with their own settings); everything else asks ``current()``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings, load_settings
from worker.crypto import Cipher
from worker.storage.db import make_engine, make_sessionmaker, transaction

if TYPE_CHECKING:
    import httpx

    from worker.quota import Budget


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cipher: Cipher
    # Keys this installation keeps in its database, once read (``worker.customers``).
    keys: dict[str, bytes] = field(default_factory=dict, compare=False)
    _budgets: dict[int, Budget] = field(default_factory=dict, compare=False)

    @property
    def http(self) -> httpx.Client:
        # Imported here: the web process reads settings and sessions, and never calls out.
        from worker.http import shared_client

        settings = self.settings
        return shared_client(
            settings.http_timeout_seconds, allow_private=settings.allow_private_urls
        )

    @property
    def budget(self) -> Budget:
        """The stores' API budgets (``worker.quota.budget_for``), one per process: the
        tokens a process took in a block from Redis serve its next refreshes, whoever
        runs them. Per process id, so a forked worker builds its own."""
        budget = self._budgets.get(os.getpid())
        if budget is None:
            from worker import quota  # the web process takes no budget

            settings = self.settings
            made = quota.budget_for(settings.broker_url, settings.database_url, self.transaction)
            budget = self._budgets.setdefault(os.getpid(), made)
        return budget

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.sessions) as session:
            yield session

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """A connection for work that is one statement, or statements that each stand
        alone: on PostgreSQL each commits by itself (no ``BEGIN`` and ``COMMIT`` round
        trips around it, a third of a one-statement transaction's CPU); on SQLite,
        which takes its write lock at ``BEGIN``, they run in one transaction."""
        if self._autocommit is None:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._autocommit.connect() as connection:
            yield connection

    @cached_property
    def _autocommit(self) -> Engine | None:
        if self.engine.dialect.name != "postgresql":
            return None
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")


_lock = threading.Lock()
_current: Runtime | None = None
_created: list[Runtime] = []  # every runtime of this process, for configure_none()


def configure(
    settings: Settings | None = None, *, pool_size: int = 5, pre_ping: bool = False
) -> Runtime:
    """Build the process's runtime. An earlier one stays usable by whoever holds it
    (a Flask app keeps its own) until ``configure_none()``."""
    global _current
    settings = settings or load_settings()
    engine = make_engine(settings.database_url, pool_size=pool_size, pre_ping=pre_ping)
    runtime = Runtime(settings, engine, make_sessionmaker(engine), Cipher(settings.secret_key))
    with _lock:
        _current = runtime
        _created.append(runtime)
    return runtime


def current() -> Runtime:
    with _lock:
        runtime = _current
    return runtime if runtime is not None else configure()


def configure_none() -> None:
    """Forget every runtime and close their connections (tests, shutdown)."""
    global _current
    with _lock:
        created = list(_created)
        _current = None
        _created.clear()
    for runtime in created:
        runtime.engine.dispose()
