"""The token refresh lease: one refresh across every worker, both tokens kept."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.factories import add_salla_store
from tests.listening import listening
from worker.errors import NeedsReauthorization
from worker.platforms.base import StoreSecrets, StoreUpdate
from worker.runtime import Runtime
from worker.storage.models import Store
from worker.stores import StoreContext, next_status, save_store, stopped_reason, store_secrets

QUOTAS = {"customers": (500, 600.0)}


def context(runtime: Runtime, store_id: int) -> StoreContext:
    with runtime.sessions() as session:
        store = session.get_one(Store, store_id)
    return StoreContext(runtime, store, QUOTAS, "http://127.0.0.1:9")


def test_it_refreshes_once_when_many_workers_see_a_401(runtime: Runtime) -> None:
    store = add_salla_store(runtime, access_token="old-access", refresh_token="old-refresh")
    calls: list[dict[str, Any]] = []

    def refresh(credentials: dict[str, Any]) -> StoreUpdate:
        calls.append(credentials)
        time.sleep(0.3)  # long enough for every other worker to queue behind the lease
        return StoreUpdate(credentials={"access_token": "new-access", "refresh_token": "new-ref"})

    contexts = [context(runtime, store.id) for _ in range(4)]
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.refresh_credentials(refresh)))
        for c in contexts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and calls[0]["refresh_token"] == "old-refresh"
    assert [r["access_token"] for r in results] == ["new-access"] * 4
    stored = context(runtime, store.id).credentials()
    assert (stored["access_token"], stored["refresh_token"]) == ("new-access", "new-ref")


def test_it_marks_the_store_when_the_refresh_is_refused(runtime: Runtime) -> None:
    store_id = add_salla_store(runtime).id

    def refresh(_: dict[str, Any]) -> StoreUpdate:
        raise NeedsReauthorization("refresh token was already used")

    with pytest.raises(NeedsReauthorization):
        context(runtime, store_id).refresh_credentials(refresh)
    with runtime.sessions() as session:
        store = session.get_one(Store, store_id)
    assert store.status == "needs_reauth" and "already used" in (store.status_reason or "")
    assert store.refresh_lock_until is None
    with pytest.raises(NeedsReauthorization):  # later workers stop without calling again
        context(runtime, store_id).refresh_credentials(refresh)


def test_it_keeps_credentials_encrypted_at_rest(runtime: Runtime) -> None:
    store_id = add_salla_store(runtime, access_token="very-secret-access-token").id
    with runtime.sessions() as session:
        raw = session.get_one(Store, store_id).credentials
    assert raw and b"very-secret-access-token" not in raw


@pytest.mark.parametrize(
    ("current", "update", "after"),
    [
        ("active", StoreUpdate(status="paused", status_reason="trial expired"), "paused"),
        ("paused", StoreUpdate(status="active"), "active"),
        ("paused", StoreUpdate(status="uninstalled"), "uninstalled"),
        # Without new credentials nothing revives an uninstalled or refused store…
        ("uninstalled", StoreUpdate(status="active"), None),
        ("needs_reauth", StoreUpdate(status="active"), None),
        ("uninstalled", StoreUpdate(status="paused", status_reason="x"), None),
        # …and new credentials always do.
        ("uninstalled", StoreUpdate(status="active", credentials={"access_token": "t"}), "active"),
        ("needs_reauth", StoreUpdate(status="active", credentials={"access_token": "t"}), "active"),
        ("active", StoreUpdate(), None),
    ],
)
def test_it_moves_a_store_only_where_its_lifecycle_allows(
    current: str, update: StoreUpdate, after: str | None
) -> None:
    assert next_status(current, update) == after


def test_it_keeps_the_reason_a_store_was_paused_for(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        update = StoreUpdate(status="paused", status_reason="subscription expired")
        paused = save_store(runtime, session, "salla", store.external_id, update)
        assert stopped_reason(paused) == "store is paused: subscription expired"
    with runtime.transaction() as session:
        resumed = save_store(runtime, session, "salla", store.external_id, StoreUpdate("active"))
        assert (resumed.status, resumed.status_reason) == ("active", None)


def test_the_receivers_lookup_is_one_statement_that_stands_alone(runtime: Runtime) -> None:
    """``store_secrets`` runs for each store every ``LOOKUP_TTL`` in each web process."""
    store = add_salla_store(runtime, "m-lookup", webhook_secrets=("first", "second"))
    seen: list[tuple[bool, str]] = []

    def statement(connection: Any, _cursor: Any, sql: str, *_: Any) -> None:
        driver = connection.connection.driver_connection
        seen.append((bool(getattr(driver, "autocommit", False)), " ".join(sql.split())))

    with listening(runtime.engine, before_cursor_execute=statement):
        found = store_secrets(runtime, "salla", "m-lookup")
        missing = store_secrets(runtime, "salla", "m-nobody")
        other_key = store_secrets(runtime, "salla", "m-lookup", "no_such_key")
    assert found == StoreSecrets(store.id, "active", ("first", "second"))
    assert missing is None
    assert other_key == StoreSecrets(store.id, "active", ())
    if runtime.engine.dialect.name == "sqlite":  # every connection begins (its write lock)
        seen = [(alone, sql) for alone, sql in seen if sql != "BEGIN IMMEDIATE"]
    else:  # no BEGIN and ROLLBACK around it
        assert all(alone for alone, _ in seen)
    assert [sql.split(" FROM ")[0] for _, sql in seen] == [
        "SELECT stores.id, stores.status, stores.credentials"
    ] * 3
