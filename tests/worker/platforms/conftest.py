"""Fixtures for platform clients: the Salla sandbox over real HTTP and an in-memory store.

``MemoryStore`` is a real ``StoreApi`` — what ``worker.stores.StoreContext``
does over the database (credentials, quota, one refresh at a time), kept in
memory so a client test needs no database.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from worker.http import build_client
from worker.platforms.base import StoreUpdate
from worker.platforms.salla.client import SallaApi
from worker.sandbox.salla import (
    DEMO_ACCESS_TOKEN,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_MERCHANT,
    DEMO_REFRESH_TOKEN,
    SallaSandboxState,
    create_salla_sandbox,
)
from worker.sandbox.server import RunningServer, serve_in_thread


class MemoryStore:
    """A store held in memory; records quota takes, rate headers and token refreshes."""

    store_id = 1
    external_id = DEMO_MERCHANT

    def __init__(
        self,
        *,
        api_base: str,
        http: httpx.Client,
        credentials: dict[str, Any],
        timezone: str = "Asia/Riyadh",
    ) -> None:
        self.api_base = api_base
        self.http = http
        self.timezone = timezone
        self.quota_taken: Counter[str] = Counter()
        self.rate_headers: list[tuple[str, dict[str, str]]] = []
        self.updates: list[StoreUpdate] = []
        self._credentials = dict(credentials)
        self._lock = threading.RLock()

    def credentials(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._credentials)

    def take_quota(self, bucket: str) -> None:
        with self._lock:
            self.quota_taken[bucket] += 1

    def observe_rate_headers(self, bucket: str, headers: Mapping[str, str]) -> None:
        with self._lock:
            self.rate_headers.append((bucket, {k.lower(): v for k, v in headers.items()}))

    def refresh_credentials(
        self, refresh: Callable[[dict[str, Any]], StoreUpdate]
    ) -> dict[str, Any]:
        # Held for the whole call: refresh tokens are single use.
        with self._lock:
            update = refresh(dict(self._credentials))
            self._credentials |= update.credentials
            self.updates.append(update)
            return dict(self._credentials)


class FrozenClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def sandbox_state(clock: FrozenClock) -> SallaSandboxState:
    """A Salla with the demo merchant and its tokens, and no customers yet."""
    state = SallaSandboxState(clock=clock)
    state.add_merchant(
        DEMO_MERCHANT, access_token=DEMO_ACCESS_TOKEN, refresh_token=DEMO_REFRESH_TOKEN
    )
    return state


@pytest.fixture
def sandbox(sandbox_state: SallaSandboxState) -> Iterator[RunningServer]:
    with serve_in_thread(create_salla_sandbox(sandbox_state)) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    client = build_client(timeout=2.0, allow_private=True)
    yield client
    client.close()


@pytest.fixture
def store(sandbox: RunningServer, http: httpx.Client) -> MemoryStore:
    credentials = {"access_token": DEMO_ACCESS_TOKEN, "refresh_token": DEMO_REFRESH_TOKEN}
    return MemoryStore(api_base=sandbox.url, http=http, credentials=credentials)


@pytest.fixture
def salla(sandbox: RunningServer, clock: FrozenClock) -> SallaApi:
    token_url = f"{sandbox.url}/oauth2/token"
    return SallaApi(token_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, clock=clock.utc)
