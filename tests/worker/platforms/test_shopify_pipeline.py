"""A Shopify webhook through the real receiver, the inbox, a refresh against the
Appstle sandbox and a delivery to a signed-webhook capture server; real database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.pipeline_world import AppstleWorld
from tests.worker.platforms.appstle_support import (
    CUSTOMER,
    SHOPIFY_PREVIOUS,
    SHOPIFY_SECRET,
    credentials,
)
from worker.pipeline import inbox, refresh
from worker.platforms.shopify import samples
from worker.sandbox.appstle import DEMO_SHOP
from worker.storage.models import CustomerPoints, InboxEvent, RefreshJob, Store

pytestmark = pytest.mark.parametrize("world", ["shopify"], indirect=True)


def test_it_delivers_a_signed_update_for_an_order(world: AppstleWorld) -> None:
    world.process(world.accepted())
    data = world.only_update("shopify", DEMO_SHOP, CUSTOMER).data
    assert (data["balance_before"], data["balance_after"], data["pending"]) == (0, 250.5, 50)
    assert (data["next_expiry_points"], data["tier"]) == (40, "Gold")
    [event] = world.rows(InboxEvent)
    assert event.headers["x-shopify-topic"] == "orders/paid"
    assert {"x-shopify-triggered-at", "x-shopify-event-id"} <= set(event.headers)


def test_it_sends_the_change_when_points_are_credited(world: AppstleWorld) -> None:
    world.process(world.accepted())
    world.sandbox.add_points(DEMO_SHOP, CUSTOMER, 100.25)
    world.process(world.accepted("orders/fulfilled"))
    latest = world.capture.received()[-1].data
    assert (latest["balance_before"], latest["balance_after"]) == (250.5, 350.75)


def test_it_reads_a_customer_named_only_by_email(world: AppstleWorld) -> None:
    world.process(world.accepted("customers/update", "Sara@Example.com"))
    [received] = world.capture.received()
    [points] = world.rows(CustomerPoints)
    # Kept under a keyed hash of the address; the address only in the encrypted contact.
    assert received.data["customer_id"] == points.customer_id
    assert points.customer_id.startswith("email:h:") and "sara" not in points.customer_id
    assert world.runtime.cipher.open(points.contact)["email"] == "sara@example.com"


def test_it_remembers_an_excluded_customer(world: AppstleWorld) -> None:
    world.sandbox.set_customer(DEMO_SHOP, CUSTOMER, available=10, status="EXCLUDED")
    world.process(world.accepted())
    [points] = world.rows(CustomerPoints)
    assert points.excluded and points.available == Decimal(10)


def test_it_accepts_both_app_secrets_and_dedupes_a_retry(world: AppstleWorld) -> None:
    sent = samples.build("orders/paid", DEMO_SHOP, CUSTOMER, SHOPIFY_SECRET)
    first = world.post(sent)
    retry_signature = samples.hmac_header(sent.body, SHOPIFY_PREVIOUS)
    retry = world.post(sent, **{"X-Shopify-Hmac-Sha256": retry_signature})
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.get_json() == {"status": "duplicate"}
    [event] = world.rows(InboxEvent)
    assert (event.platform, event.store_ref, event.event_type) == (
        "shopify", DEMO_SHOP, "orders/paid",
    )  # fmt: skip


@pytest.mark.parametrize(
    "signature", ["", "not-base64!", "AAAA", "✓", samples.hmac_header(b"other", SHOPIFY_SECRET)]
)
def test_it_answers_401_and_stores_nothing(world: AppstleWorld, signature: str) -> None:
    sent = samples.build("orders/paid", DEMO_SHOP, CUSTOMER, SHOPIFY_SECRET)
    assert world.post(sent, **{"X-Shopify-Hmac-Sha256": signature}).status_code == 401
    assert world.rows(InboxEvent) == []


def test_it_keeps_an_event_of_an_unknown_shop_until_the_shop_is_registered(
    world: AppstleWorld,
) -> None:
    sent = samples.build("orders/paid", "someone-else.myshopify.com", CUSTOMER, SHOPIFY_SECRET)
    response = world.post(sent)
    assert response.status_code == 200
    assert response.get_json()["status"] == "waiting_for_store"
    [event] = world.rows(InboxEvent)
    assert event.status == "waiting_for_store"


def test_it_records_other_topics_as_ignored(world: AppstleWorld) -> None:
    response = world.post(samples.build("products/update", DEMO_SHOP, None, SHOPIFY_SECRET))
    assert response.get_json()["status"] == "ignored"
    assert world.rows(RefreshJob) == []


def test_it_stops_refreshing_an_uninstalled_shop(world: AppstleWorld) -> None:
    world.process(world.accepted("app/uninstalled", ""))
    [store] = world.rows(Store)
    assert store.status == "uninstalled"
    # The receiver's store cache may still say "active"; the inbox has the last word.
    world.process(world.accepted())
    latest = max(world.rows(InboxEvent), key=lambda event: event.id)
    assert latest.reason == "store has uninstalled the app"
    assert world.rows(RefreshJob) == [] and world.capture.received() == []


def test_it_marks_the_store_when_appstle_refuses_its_key(world: AppstleWorld) -> None:
    world.sandbox.revoke_key(credentials()["appstle_api_key"])
    world.process(world.accepted())
    [job] = world.rows(RefreshJob)
    [store] = world.rows(Store)
    assert job.status == "failed" and "re-authorization" in (job.last_error or "")
    assert store.status == "needs_reauth" and "HTTP 401" in (store.status_reason or "")
    assert world.capture.received() == []


def test_it_waits_out_a_429_without_counting_a_failure(world: AppstleWorld) -> None:
    world.sandbox.fail_next(1, status=429, retry_after=30)
    [due] = inbox.handle(world.runtime, world.platforms, world.accepted())
    with pytest.raises(refresh.Reschedule) as later:
        refresh.run(world.runtime, world.platforms, due.job_id)
    assert later.value.countdown >= 30
    [job] = world.rows(RefreshJob)
    assert (job.status, job.attempts) == ("retrying", 0) and "rate limit" in (job.last_error or "")
