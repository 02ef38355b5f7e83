"""Every published Shopify sample payload through the real receiver (HTTP, signed as
Shopify signs) → the inbox → the refresh request it causes, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.worker.platforms.appstle_support import SHOPIFY_SECRET, credentials
from web import create_app
from worker.pipeline import inbox
from worker.platforms.base import Platform, StoreUpdate
from worker.platforms.shopify import ShopifyPlatform
from worker.platforms.shopify.examples import EXAMPLE_CUSTOMERS, EXAMPLES
from worker.platforms.shopify.samples import encode, signed_headers
from worker.runtime import Runtime
from worker.sandbox.appstle import DEMO_SHOP
from worker.storage.models import InboxEvent, RefreshJob, Store
from worker.stores import save_store

ORDER_CUSTOMER = EXAMPLE_CUSTOMERS["orders/create"]


@dataclasses.dataclass
class Receiver:
    runtime: Runtime
    client: FlaskClient
    platforms: dict[str, Platform]
    store_id: int

    def post(self, topic: str, document: Any, **headers: str) -> dict[str, Any]:
        body = encode(document)
        sent = signed_headers(topic, DEMO_SHOP, body, SHOPIFY_SECRET) | headers
        response = self.client.post("/webhooks/shopify", data=body, headers=sent)
        assert response.status_code == 200, response.get_json()
        answer: dict[str, Any] = response.get_json()
        return answer

    def handle(self, answer: dict[str, Any]) -> InboxEvent:
        inbox.handle(self.runtime, self.platforms, int(answer["id"]))
        with self.runtime.sessions() as session:
            return session.get_one(InboxEvent, int(answer["id"]))

    def refreshes(self) -> set[tuple[int, str]]:
        with self.runtime.sessions() as session:
            jobs = session.scalars(select(RefreshJob))
            return {(job.store_id, job.customer_id) for job in jobs}

    def slots(self) -> set[str]:
        with self.runtime.sessions() as session:
            return {job.slot for job in session.scalars(select(RefreshJob))}

    def store_status(self) -> str:
        with self.runtime.sessions() as session:
            return session.get_one(Store, self.store_id).status

    def inbox_rows(self) -> int:
        with self.runtime.sessions() as session:
            return len(list(session.scalars(select(InboxEvent))))


@pytest.fixture
def receiver(runtime: Runtime) -> Receiver:
    settings = dataclasses.replace(runtime.settings, shopify_webhook_secrets=(SHOPIFY_SECRET,))
    with runtime.transaction() as session:
        update = StoreUpdate(status="active", credentials=credentials())
        store = save_store(runtime, session, "shopify", DEMO_SHOP, update)
    platforms: dict[str, Platform] = {"shopify": ShopifyPlatform(settings)}
    return Receiver(runtime, create_app(settings).test_client(), platforms, store.id)


@pytest.mark.parametrize("topic", sorted(EXAMPLES))
def test_it_reads_each_published_example_as_shopify_means_it(
    receiver: Receiver, topic: str
) -> None:
    event = receiver.handle(receiver.post(topic, EXAMPLES[topic]))
    assert (event.platform, event.store_ref, event.event_type) == ("shopify", DEMO_SHOP, topic)
    expected = EXAMPLE_CUSTOMERS[topic]
    if expected is not None:
        assert event.status == "done"
        assert receiver.refreshes() == {(receiver.store_id, expected)}
        # An order's points may be credited later (Appstle awards on payment or
        # fulfilment): orders are re-checked at the settle delays, customers are not.
        settles = {f"settle{i}" for i, _ in enumerate(receiver.runtime.settings.settle_delays, 1)}
        wanted = {"soon"} | (settles if topic.startswith("orders/") else set())
        assert receiver.slots() == wanted
    elif topic == "app/uninstalled":
        assert receiver.store_status() == "uninstalled" and not receiver.refreshes()
    else:  # refunds/create names its order only
        assert event.status == "ignored" and "order_id" in (event.reason or "")
        assert not receiver.refreshes()


def _variant(change: str) -> dict[str, Any]:
    order = copy.deepcopy(EXAMPLES["orders/paid"])
    customer = order["customer"]
    if change == "id as digits":
        customer["id"] = str(customer["id"])
    elif change == "only the GID":
        del customer["id"]
    elif change == "id null, GID set":
        customer["id"] = None
    return order


@pytest.mark.parametrize("change", ["id as digits", "only the GID", "id null, GID set"])
def test_it_finds_the_customer_in_every_id_form(receiver: Receiver, change: str) -> None:
    receiver.handle(receiver.post("orders/paid", _variant(change)))
    assert receiver.refreshes() == {(receiver.store_id, ORDER_CUSTOMER)}


def test_it_keeps_one_row_for_one_event_delivered_twice(receiver: Receiver) -> None:
    """Shopify's duplicate key is X-Shopify-Event-Id: two webhook ids, one event, one row."""
    first = receiver.post("orders/paid", EXAMPLES["orders/paid"], **{"X-Shopify-Event-Id": "e-1"})
    again = receiver.post("orders/paid", EXAMPLES["orders/paid"], **{"X-Shopify-Event-Id": "e-1"})
    assert first["status"] == "accepted" and again == {"status": "duplicate"}
    other = receiver.post("orders/paid", EXAMPLES["orders/paid"], **{"X-Shopify-Event-Id": "e-2"})
    assert other["status"] == "accepted"
    assert receiver.inbox_rows() == 2


def test_it_keeps_one_row_per_webhook_id_without_an_event_id(receiver: Receiver) -> None:
    bare = {"X-Shopify-Event-Id": "", "X-Shopify-Webhook-Id": "w-1"}
    first = receiver.post("orders/paid", EXAMPLES["orders/paid"], **bare)
    again = receiver.post("orders/paid", EXAMPLES["orders/paid"], **bare)
    assert first["status"] == "accepted" and again == {"status": "duplicate"}
    assert receiver.inbox_rows() == 1
