"""Zid tokens refreshed before they expire: the beat job against the Zid sandbox's
OAuth endpoint over real HTTP, on SQLite and PostgreSQL, with the default window."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.worker.platforms.zid_support import demo_credentials, sandbox_settings
from worker import runtime as runtime_module
from worker.celery_app import beat_schedule
from worker.dispatch import REFRESH_TOKENS
from worker.platforms.base import StoreUpdate
from worker.platforms.zid.tokens import refresh_expiring
from worker.runtime import Runtime
from worker.sandbox.server import RunningServer
from worker.sandbox.zid import DEMO_REFRESH_TOKEN, DEMO_STORE, ZidSandboxState, create_zid_sandbox
from worker.sandbox.zid_records import TOKEN_LIFETIME
from worker.storage.models import Store
from worker.stores import save_store

OTHER_STORE = "3060"
Serve = Callable[[Any], RunningServer]


@dataclasses.dataclass
class Tokens:
    runtime: Runtime
    zid: ZidSandboxState
    api: RunningServer

    def add_store(
        self, external_id: str, expires_in: timedelta | None, **credentials: Any
    ) -> Store:
        update = StoreUpdate(
            status="active",
            credentials=demo_credentials(**credentials),
            token_expires_at=None if expires_in is None else datetime.now(UTC) + expires_in,
        )
        with self.runtime.transaction() as session:
            return save_store(
                self.runtime, session, "zid", external_id, update, api_base=self.api.url
            )

    def store(self, store: Store) -> tuple[Store, dict[str, Any]]:
        with self.runtime.sessions() as session:
            row = session.get_one(Store, store.id)
            return row, self.runtime.cipher.open(row.credentials)

    def rotated(self) -> list[str]:
        return [refresh.outcome for refresh in self.zid.refreshes()]


@pytest.fixture
def tokens(runtime: Runtime, serve: Serve) -> Tokens:
    zid = ZidSandboxState()
    zid.add_store(DEMO_STORE)
    api = serve(create_zid_sandbox(zid))
    settings = sandbox_settings(runtime.settings, api.url, zid)
    assert settings.zid_refresh_window_days == 60  # the default window
    return Tokens(runtime_module.configure(settings), zid, api)


def test_it_refreshes_tokens_expiring_within_the_window(tokens: Tokens) -> None:
    soon = tokens.add_store(DEMO_STORE, timedelta(days=20))
    later = tokens.add_store(OTHER_STORE, timedelta(days=200), refresh_token="not-due-yet")
    run = refresh_expiring(tokens.runtime, datetime.now(UTC))
    assert (run.refreshed, run.failed) == ([soon.id], {})
    assert tokens.rotated() == ["rotated"]
    row, credentials = tokens.store(soon)
    [refresh] = tokens.zid.refreshes()
    assert refresh.tokens is not None
    assert (credentials["authorization"], credentials["manager_token"]) == refresh.tokens[:2]
    assert credentials["refresh_token"] == refresh.tokens[2] != DEMO_REFRESH_TOKEN
    assert row.token_version == soon.token_version + 1
    assert row.token_expires_at is not None
    assert row.token_expires_at > datetime.now(UTC) + timedelta(seconds=TOKEN_LIFETIME - 60)
    assert tokens.store(later)[0].token_version == later.token_version


def test_it_refreshes_nothing_when_no_token_is_due(tokens: Tokens) -> None:
    store = tokens.add_store(DEMO_STORE, timedelta(days=61))
    assert refresh_expiring(tokens.runtime, datetime.now(UTC)).refreshed == []
    assert tokens.rotated() == []
    assert tokens.store(store)[1]["refresh_token"] == DEMO_REFRESH_TOKEN


def test_it_spends_the_refresh_token_once_when_runs_overlap(tokens: Tokens) -> None:
    store = tokens.add_store(DEMO_STORE, timedelta(days=3))
    now, runs = datetime.now(UTC), []
    threads = [
        threading.Thread(target=lambda: runs.append(refresh_expiring(tokens.runtime, now)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert tokens.rotated() == ["rotated"]  # never "reused", which would revoke every token
    assert sum(len(run.refreshed) for run in runs) >= 1
    assert all(run.failed == {} for run in runs)
    row, credentials = tokens.store(store)
    assert row.token_version == store.token_version + 1
    assert credentials["refresh_token"] == tokens.zid.tokens(DEMO_STORE)[2]


def test_it_learns_the_expiry_of_a_store_added_without_one(tokens: Tokens) -> None:
    store = tokens.add_store(DEMO_STORE, None)
    assert refresh_expiring(tokens.runtime, datetime.now(UTC)).refreshed == [store.id]
    assert tokens.store(store)[0].token_expires_at is not None


def test_it_leaves_a_store_without_expiry_or_refresh_token_alone(tokens: Tokens) -> None:
    store = tokens.add_store(DEMO_STORE, None, refresh_token="")
    run = refresh_expiring(tokens.runtime, datetime.now(UTC))
    assert (run.refreshed, run.skipped) == ([], [store.id])
    assert tokens.store(store)[0].status == "active"


def test_it_marks_the_store_when_zid_refuses_its_refresh_token(tokens: Tokens) -> None:
    store = tokens.add_store(DEMO_STORE, timedelta(days=5), refresh_token="revoked-at-zid")
    run = refresh_expiring(tokens.runtime, datetime.now(UTC))
    assert list(run.failed) == [store.id]
    row, _ = tokens.store(store)
    assert row.status == "needs_reauth"
    assert "refused the refresh token" in (row.status_reason or "")
    assert "revoked-at-zid" not in (row.status_reason or "")


@pytest.mark.parametrize("status", ["uninstalled", "paused", "needs_reauth"])
def test_it_never_refreshes_stores_that_are_not_active(tokens: Tokens, status: str) -> None:
    store = tokens.add_store(DEMO_STORE, timedelta(days=1))
    with tokens.runtime.transaction() as session:
        session.get_one(Store, store.id).status = status
    assert refresh_expiring(tokens.runtime, datetime.now(UTC)).refreshed == []
    assert tokens.rotated() == []


def test_it_refreshes_nothing_without_our_oauth_client(tokens: Tokens) -> None:
    tokens.add_store(DEMO_STORE, timedelta(days=1))
    settings = dataclasses.replace(tokens.runtime.settings, zid_client_secret="")
    assert refresh_expiring(runtime_module.configure(settings), datetime.now(UTC)).refreshed == []
    assert tokens.rotated() == []


def test_it_schedules_the_job_hourly_under_its_stable_name(tokens: Tokens) -> None:
    from worker.tasks import refresh_tokens

    entry = beat_schedule(tokens.runtime.settings)["refresh-expiring-tokens"]
    assert (entry["task"], entry["schedule"]) == ("relay.refresh_tokens", 3600.0)
    assert refresh_tokens.name == REFRESH_TOKENS == entry["task"]
    assert refresh_tokens() == 0  # the task runs the job on the current runtime
