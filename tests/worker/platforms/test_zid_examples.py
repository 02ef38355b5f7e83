"""Every published Zid example, unchanged, through the real receiver (HTTP, with the
store's Basic credentials or the app events' path token) → inbox → what results:
the refresh requested for the customer Zid means, or the store's new status.
On SQLite and PostgreSQL (``database_url`` is parametrized), with a merchant's
default debounce and settle windows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.pipeline_support import all_rows
from tests.worker.platforms.zid_support import SECRET, demo_credentials
from web import create_app
from worker.pipeline import inbox
from worker.platforms.base import Platform, StoreUpdate
from worker.platforms.zid import ZidPlatform
from worker.platforms.zid.examples import EXAMPLES
from worker.platforms.zid.samples import encode
from worker.platforms.zid.webhooks import GUEST, ORDER_EVENTS, SUBSCRIBED_EVENTS
from worker.runtime import Runtime
from worker.sandbox.zid import DEMO_STORE
from worker.storage.models import InboxEvent, RefreshJob, Store
from worker.stores import save_store

APP_TOKEN = "zid-app-events-token"
STORE_EVENTS = [event for event in EXAMPLES if event in SUBSCRIBED_EVENTS]
APP_EVENTS = [event for event in EXAMPLES if event.startswith("app.market.")]
# The status each app event leaves the store in (None: recorded and ignored, no change).
APP_OUTCOME = {
    "app.market.application.authorized": "active",
    "app.market.application.install": "active",
    "app.market.subscription.active": "active",
    "app.market.subscription.renew": "active",
    "app.market.subscription.upgrade": "active",
    "app.market.application.uninstall": "uninstalled",
    "app.market.subscription.suspended": "paused",
    "app.market.subscription.expired": "paused",
    "app.market.subscription.refunded": "paused",
    "app.market.subscription.warning": None,
}


@dataclasses.dataclass
class Receiving:
    runtime: Runtime
    client: FlaskClient
    platforms: dict[str, Platform]

    def add_store(self, external_id: str, status: str = "active") -> Store:
        update = StoreUpdate(status=status, credentials=demo_credentials(webhook_secrets=[SECRET]))
        with self.runtime.transaction() as session:
            return save_store(self.runtime, session, "zid", external_id, update)

    def handle(self, response: Any) -> None:
        assert response.status_code == 200, response.get_json()
        inbox.handle(self.runtime, self.platforms, int(response.get_json()["id"]))

    def store(self, store_id: int) -> Store:
        with self.runtime.sessions() as session:
            return session.get_one(Store, store_id)


@pytest.fixture
def receiving(runtime: Runtime) -> Receiving:
    settings = dataclasses.replace(
        runtime.settings,
        zid_app_webhook_token=APP_TOKEN,
        debounce_seconds=5.0,  # a merchant's defaults, not the suite's zero windows
        settle_delays=(60.0, 600.0),
    )
    app = create_app(settings)  # configures the runtime the worker side uses too
    configured: Runtime = app.extensions["relay.runtime"]
    return Receiving(configured, app.test_client(), {"zid": ZidPlatform(settings)})


def published_customer(event: str) -> str:
    example = EXAMPLES[event]
    customer = example["customer"]["id"] if event in ORDER_EVENTS else example["id"]
    return str(customer)


@pytest.mark.parametrize("event", STORE_EVENTS)
def test_it_requests_a_refresh_for_the_customer_each_store_example_names(
    receiving: Receiving, event: str
) -> None:
    store = receiving.add_store(DEMO_STORE)
    response = receiving.client.post(
        f"/webhooks/zid/{DEMO_STORE}/{event}",
        data=encode(EXAMPLES[event]),
        headers={"Content-Type": "application/json", "Authorization": SECRET},
    )
    receiving.handle(response)
    jobs = all_rows(receiving.runtime, RefreshJob)
    assert {(job.store_id, job.customer_id) for job in jobs} == {
        (store.id, published_customer(event))
    }
    # Orders are re-checked later (points are credited after the order); customers are not.
    expected_slots = {"soon", "settle1", "settle2"} if event in ORDER_EVENTS else {"soon"}
    assert {job.slot for job in jobs} == expected_slots
    [row] = all_rows(receiving.runtime, InboxEvent)
    assert (row.event_type, row.status, row.reason) == (event, "done", None)


@pytest.mark.parametrize("event", APP_EVENTS)
def test_it_gives_the_store_each_app_example_names_its_status(
    receiving: Receiving, event: str
) -> None:
    example = EXAMPLES[event]
    before = "paused" if APP_OUTCOME[event] == "active" else "active"
    store = receiving.add_store(str(example["store_id"]), status=before)
    response = receiving.client.post(
        f"/webhooks/zid/app/{APP_TOKEN}",
        data=encode(example),
        headers={"Content-Type": "application/json"},
    )
    if APP_OUTCOME[event] is None:
        assert response.get_json()["status"] == "ignored"
        assert receiving.store(store.id).status == before
        return
    receiving.handle(response)
    after = receiving.store(store.id)
    assert after.status == APP_OUTCOME[event]
    assert (after.status_reason is None) == (after.status == "active")
    assert all_rows(receiving.runtime, RefreshJob) == []


def test_it_refuses_app_events_on_another_path_and_stores_nothing(receiving: Receiving) -> None:
    body = encode(EXAMPLES["app.market.application.uninstall"])
    response = receiving.client.post(
        "/webhooks/zid/app/guessed", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert all_rows(receiving.runtime, InboxEvent) == []


def test_it_ignores_a_guest_checkout_with_its_reason(receiving: Receiving) -> None:
    receiving.add_store(DEMO_STORE)
    guest = EXAMPLES["order.status.update"] | {"is_guest_customer": 1}
    response = receiving.client.post(
        f"/webhooks/zid/{DEMO_STORE}/order.status.update",
        data=encode(guest),
        headers={"Content-Type": "application/json", "Authorization": SECRET},
    )
    receiving.handle(response)
    [row] = all_rows(receiving.runtime, InboxEvent)
    assert (row.status, row.reason) == ("ignored", GUEST)
    assert all_rows(receiving.runtime, RefreshJob) == []
