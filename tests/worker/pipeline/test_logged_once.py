"""What fails for good is logged once, at WARNING, with the ids that lead to its row and
no personal data: a refresh job that failed, a store that needs re-authorization."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.factories import add_salla_store
from tests.worker.pipeline.health_support import EMAIL, PHONE
from worker.errors import NeedsReauthorization
from worker.pipeline import refresh
from worker.platforms import build_platforms
from worker.platforms.base import StoreUpdate
from worker.runtime import Runtime
from worker.storage.models import RefreshJob, Store
from worker.stores import StoreContext

TOKEN = "Bearer abcdef0123456789"


def warnings(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return [message for message in messages if words in message]


def assert_clean(message: str) -> None:
    for personal in (EMAIL, PHONE, "abcdef0123456789"):
        assert personal not in message


def test_it_logs_a_refresh_that_failed_for_good_once(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        session.get_one(Store, store.id).status = "paused"
        [due] = refresh.request(runtime.settings, session, store.id, "7", settle=False)
    refresh.run(runtime, build_platforms(runtime.settings), due.job_id)
    refresh.run(runtime, build_platforms(runtime.settings), due.job_id)  # a redelivered message
    with runtime.sessions() as session:
        assert session.get_one(RefreshJob, due.job_id).status == "failed"
    [line] = warnings(caplog, "failed")
    assert f"refresh job {due.job_id} (store {store.key}) failed" in line


def test_it_logs_a_store_that_needs_reauthorization_once(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    store = add_salla_store(runtime)

    def refused(_: dict[str, Any]) -> StoreUpdate:
        raise NeedsReauthorization(f"token of {EMAIL} ({PHONE}) refused: {TOKEN}")

    for _ in range(2):  # a second worker finds the store marked and stops
        with runtime.sessions() as session:
            loaded = session.get_one(Store, store.id)
        with pytest.raises(NeedsReauthorization):
            StoreContext(runtime, loaded, {}, "http://127.0.0.1:9").refresh_credentials(refused)
    [line] = warnings(caplog, "re-authorization")
    assert f"store {store.key} needs re-authorization" in line
    assert_clean(line)
