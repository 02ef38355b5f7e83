"""Every webhook example Salla publishes (``worker.platforms.salla.examples``),
every field as published, signed as Salla signs, through the receiver → inbox
→ the refresh request or store change it means — on SQLite and PostgreSQL.

The store is registered under the example's own merchant id, so no field of a
published body is rewritten for the test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import SALLA_SECRET
from tests.factories import add_salla_store, encode, salla_headers
from tests.pipeline_support import all_rows
from web import create_app
from worker.pipeline import inbox
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.platforms.salla.examples import EXAMPLES
from worker.platforms.salla.webhooks import HANDLED, plan
from worker.points import CustomerContact
from worker.runtime import Runtime
from worker.storage.models import InboxEvent, RefreshJob, Store

ORDER_CUSTOMER = "225167971"  # data.customer.id of Salla's Orders model example
# Event → the customer Salla means: where its documented shape puts them.
CUSTOMERS = {
    "order.created": ORDER_CUSTOMER,
    "order.updated": ORDER_CUSTOMER,
    "order.cancelled": ORDER_CUSTOMER,
    "order.refunded": ORDER_CUSTOMER,
    "order.deleted": ORDER_CUSTOMER,
    "order.products.updated": ORDER_CUSTOMER,
    "order.payment.updated": ORDER_CUSTOMER,
    "order.coupon.updated": ORDER_CUSTOMER,
    "order.total.price.updated": ORDER_CUSTOMER,
    "order.status.updated": "1779795066",  # data.order.customer.id
    "invoice.created": "396470115",  # data.customer.id
    "customer.created": "225167971",  # data.id
    "customer.updated": "225167971",
    "customer.login": "225167971",
}
# App event → the store status it leaves an active store in, and the reason.
STORE_STATUS = {
    "app.store.authorize": ("active", None),
    "app.uninstalled": ("uninstalled", None),
    "app.subscription.started": ("active", None),
    "app.subscription.renewed": ("active", None),
    "app.subscription.expired": ("paused", "subscription expired"),
    "app.subscription.canceled": ("paused", "subscription canceled"),
    "app.trial.started": ("active", None),
    "app.trial.expired": ("paused", "trial expired"),
    "app.trial.canceled": ("paused", "trial canceled"),
}
# App events acknowledged without changing the store.
NOTICES = {"app.installed", "app.updated", "app.settings.updated"}
MERCHANT_DEFAULTS = {"debounce_seconds": 5.0, "settle_delays": (60.0, 600.0)}


@dataclasses.dataclass
class Receiver:
    runtime: Runtime
    platforms: dict[str, Platform]
    client: FlaskClient

    def deliver(self, document: dict[str, Any]) -> int:
        body = encode(document)
        response = self.client.post(
            "/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET)
        )
        assert response.status_code == 200, response.get_json()
        latest = max(all_rows(self.runtime, InboxEvent), key=lambda row: row.id)
        inbox.handle(self.runtime, self.platforms, latest.id)
        return latest.id

    def event(self, inbox_id: int) -> InboxEvent:
        with self.runtime.sessions() as session:
            return session.get_one(InboxEvent, inbox_id)


@pytest.fixture
def receiver(runtime: Runtime) -> Receiver:
    client = create_app(runtime.settings).test_client()
    # A merchant's defaults (the suite's settings set the windows to zero).
    merchant = dataclasses.replace(runtime.settings, **MERCHANT_DEFAULTS)  # type: ignore[arg-type]
    return Receiver(
        dataclasses.replace(runtime, settings=merchant), build_platforms(merchant), client
    )


def test_every_event_the_receiver_handles_has_a_published_example() -> None:
    assert set(EXAMPLES) == HANDLED == set(CUSTOMERS) | set(STORE_STATUS) | NOTICES


@pytest.mark.parametrize("event", sorted(CUSTOMERS))
def test_it_asks_to_refresh_the_customer_salla_names(receiver: Receiver, event: str) -> None:
    example = EXAMPLES[event]
    store = add_salla_store(receiver.runtime, str(example["merchant"]))

    inbox_id = receiver.deliver(example)

    assert receiver.event(inbox_id).status == "done"
    jobs = all_rows(receiver.runtime, RefreshJob)
    assert {(job.store_id, job.customer_id) for job in jobs} == {(store.id, CUSTOMERS[event])}
    # Order events ask again later too (points can be credited after the order).
    expected = (
        {"soon", "settle1", "settle2"} if event.startswith(("order.", "invoice.")) else {"soon"}
    )
    assert {job.slot for job in jobs} == expected


@pytest.mark.parametrize("event", sorted(STORE_STATUS))
def test_it_follows_the_app_s_lifecycle(receiver: Receiver, event: str) -> None:
    example = EXAMPLES[event]
    add_salla_store(receiver.runtime, str(example["merchant"]))

    inbox_id = receiver.deliver(example)

    assert receiver.event(inbox_id).status == "done"
    [store] = all_rows(receiver.runtime, Store)
    assert (store.status, store.status_reason) == STORE_STATUS[event]
    assert all_rows(receiver.runtime, RefreshJob) == []


@pytest.mark.parametrize("event", sorted(NOTICES))
def test_it_acknowledges_app_notices_without_changing_the_store(
    receiver: Receiver, event: str
) -> None:
    example = EXAMPLES[event]
    add_salla_store(receiver.runtime, str(example["merchant"]))

    event_row = receiver.event(receiver.deliver(example))

    assert event_row.status == "ignored" and event_row.reason
    [store] = all_rows(receiver.runtime, Store)
    assert (store.status, store.status_reason) == ("active", None)


def test_it_registers_the_store_an_authorization_names(receiver: Receiver) -> None:
    receiver.deliver(EXAMPLES["app.store.authorize"])

    [store] = all_rows(receiver.runtime, Store)
    assert (store.external_id, store.status) == ("1234509876", "active")
    credentials = receiver.runtime.cipher.open(store.credentials)
    assert credentials["access_token"] == EXAMPLES["app.store.authorize"]["data"]["access_token"]


@pytest.mark.parametrize(
    ("event", "email", "phone", "name"),
    [
        # A number beside mobile_code, first and last name.
        ("order.created", "usertest@gmail.com", "+966501806978", "Mohammed Ali"),
        # One string with its code, and a single name.
        ("order.status.updated", "Test.2022@salla.sa", "+96652318526", "Test Salla"),
        ("invoice.created", "Abubadr512@gmail.com", "+966555317835", "بدر المطيري"),
        ("customer.login", "test@gmail.com", "+966555555555", "User Mohammed"),
    ],
)
def test_it_reads_contact_details_as_salla_spells_them(
    event: str, email: str, phone: str, name: str
) -> None:
    contact = CustomerContact(email=email, phone=phone, name=name)
    assert plan(event, encode(EXAMPLES[event])).contact == contact


@pytest.mark.parametrize(
    "data",
    [
        {"id": 1, "order": {"id": 2, "customer": {"id": 77}}},  # the documented shape
        {"id": 1, "customer": {"id": 77}},  # an order body under this event name
        {"id": 1, "order": {"id": 2, "customer_id": "77"}},
        {"id": 1, "customer_id": 77},
    ],
)
def test_it_accepts_every_shape_of_a_status_change(data: dict[str, Any]) -> None:
    body = encode({"event": "order.status.updated", "merchant": 1, "data": data})
    assert plan("order.status.updated", body).customer_ids == ("77",)


def test_it_ignores_an_add_on_subscription() -> None:
    # Reference: SallaApp/salla-partners-agent-kit
    # .agents/skills/salla-app-billing/references/subscription-events.md (item_type "addon").
    document = EXAMPLES["app.subscription.expired"]
    body = encode(document | {"data": document["data"] | {"item_type": "addon"}})
    event_plan = plan("app.subscription.expired", body)
    assert event_plan.store_update is None and "add-on" in (event_plan.ignored_reason or "")
