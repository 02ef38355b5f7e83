"""Events that arrive while a store's install is processed: parked, never dropped.

Salla sends ``app.store.authorize`` and, moments later, the store's first
orders; the authorize is still waiting for a worker when they arrive. Through
the real receiver (Flask app, real database and Redis) and the worker's inbox.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from tests.conftest import SALLA_SECRET
from tests.factories import CUSTOMER, add_salla_store, encode, salla_event, salla_headers
from tests.pipeline_support import all_rows
from web import create_app
from worker.config import Settings
from worker.pipeline import inbox, sweeper
from worker.platforms import build_platforms
from worker.platforms.salla import samples
from worker.runtime import Runtime
from worker.storage.models import InboxEvent, RefreshJob, utcnow

NEW_MERCHANT = "777000111"


@pytest.fixture
def app(runtime: Runtime, settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, document: dict[str, object]) -> dict[str, str]:
    body = encode(document)
    response = client.post("/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET))
    assert response.status_code == 200, response.get_json()
    answer: dict[str, str] = response.get_json()
    return answer


def authorize() -> dict[str, object]:
    return samples.sample_event("app.store.authorize", NEW_MERCHANT)


def order() -> dict[str, object]:
    return salla_event("order.created", merchant=NEW_MERCHANT)


def drain(runtime: Runtime) -> None:
    """What the worker's drain does: claim the pending rows and process them."""
    platforms = build_platforms(runtime.settings)
    for inbox_id in inbox.claim_pending(runtime, 100):
        inbox.process(runtime, platforms, inbox_id)


def refresh_requests(runtime: Runtime) -> list[str]:
    return [job.customer_id for job in all_rows(runtime, RefreshJob)]


def statuses(runtime: Runtime) -> dict[str, str]:
    return {row.event_type: row.status for row in all_rows(runtime, InboxEvent)}


def test_an_order_50_ms_after_the_install_ends_in_a_refresh_request(
    client: FlaskClient, runtime: Runtime
) -> None:
    assert post(client, authorize())["status"] == "accepted"
    time.sleep(0.05)
    assert post(client, order())["status"] == "waiting_for_store"
    drain(runtime)  # the authorize registers the store and releases the order
    assert refresh_requests(runtime) == [CUSTOMER]
    assert statuses(runtime) == {"app.store.authorize": "done", "order.created": "done"}


def test_it_does_not_remember_that_a_store_was_unknown(
    client: FlaskClient, runtime: Runtime
) -> None:
    assert post(client, order())["status"] == "waiting_for_store"  # looked up: no store yet
    post(client, authorize())
    drain(runtime)
    assert refresh_requests(runtime) == [CUSTOMER]
    second = salla_event("order.created", merchant=NEW_MERCHANT, customer={"id": 42})
    assert post(client, second)["status"] == "accepted"  # the new store is found at once
    drain(runtime)
    assert sorted(refresh_requests(runtime)) == sorted([CUSTOMER, "42"])


def test_the_sweeper_releases_an_event_whose_store_appeared_later(
    client: FlaskClient, runtime: Runtime
) -> None:
    # Its install was processed just before it was stored, or the store came from the CLI.
    post(client, order())
    add_salla_store(runtime, NEW_MERCHANT)
    [parked] = all_rows(runtime, InboxEvent)
    assert sweeper.sweep(runtime).events == [parked.id]
    inbox.handle(runtime, build_platforms(runtime.settings), parked.id)  # relay.handle_event
    assert refresh_requests(runtime) == [CUSTOMER]


def test_an_event_whose_store_never_appears_is_ignored_with_the_reason(
    client: FlaskClient, runtime: Runtime
) -> None:
    post(client, order())
    assert sweeper.sweep(runtime).events == []  # still waiting: it is young
    waited = timedelta(seconds=runtime.settings.store_wait_seconds + 1)  # 15 min by default
    with runtime.transaction() as session:
        session.execute(update(InboxEvent).values(received_at=utcnow() - waited))
    assert sweeper.sweep(runtime).events == []
    [row] = all_rows(runtime, InboxEvent)
    assert row.status == "ignored" and row.reason.startswith("unknown store")
    assert row.body == b""  # no personal data kept for an event given up on
    add_salla_store(runtime, NEW_MERCHANT)
    assert sweeper.sweep(runtime).events == []  # given up on: not released any more
