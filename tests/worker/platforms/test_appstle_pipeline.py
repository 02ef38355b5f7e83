"""An Appstle (Svix) webhook through the real receiver, the inbox, a refresh
against the Appstle sandbox and a delivery to a signed-webhook capture server;
real database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests.pipeline_world import AppstleWorld
from tests.worker.platforms.appstle_support import CUSTOMER, WHSEC_PREVIOUS
from worker.sandbox.appstle import DEMO_SHOP, QUICKSTART, REFERENCE, sign_appstle_webhook
from worker.storage.models import InboxEvent, RefreshJob, Store

pytestmark = pytest.mark.parametrize("world", ["appstle"], indirect=True)


def test_it_delivers_a_signed_update_for_a_loyalty_event(world: AppstleWorld) -> None:
    world.process(world.accepted())
    data = world.only_update("shopify", DEMO_SHOP, CUSTOMER).data
    assert (data["balance_after"], data["next_expiry_points"], data["tier"]) == (120, 20, "Silver")
    [event] = world.rows(InboxEvent)
    assert (event.platform, event.store_ref, event.event_type, event.status) == (
        "appstle", DEMO_SHOP, "loyalty.earned", "done",
    )  # fmt: skip
    assert [job.slot for job in world.rows(RefreshJob)] == ["soon"]


@pytest.mark.parametrize("form", [REFERENCE, QUICKSTART])
def test_it_refreshes_against_an_api_that_reads_only_one_form(
    world: AppstleWorld, form: str
) -> None:
    """Appstle's two docs spell the customer differently; either API gets its balance read."""
    world.sandbox.forms = frozenset({form})
    world.process(world.accepted("point.earned"))
    [received] = world.capture.received()
    assert received.data["balance_after"] == 120
    assert world.sandbox.requests()[-1].form == form


def test_it_sends_the_tier_change_after_a_vip_event(world: AppstleWorld) -> None:
    world.process(world.accepted())
    world.sandbox.set_customer(DEMO_SHOP, CUSTOMER, available=120, tier="Gold")
    world.process(world.accepted("loyalty.vip-tier-achieved"))
    latest = world.capture.received()[-1]
    assert "points.tier_changed" in latest.data["kinds"] and latest.data["tier"] == "Gold"


def test_it_accepts_both_secrets_and_dedupes_a_retry(world: AppstleWorld) -> None:
    first = sign_appstle_webhook("loyalty.earned", CUSTOMER, msg_id="msg_42")
    retry = sign_appstle_webhook(
        "loyalty.earned", CUSTOMER, msg_id="msg_42", secret=WHSEC_PREVIOUS, body=first.body
    )
    assert world.post(first).status_code == 200
    answer = world.post(retry)
    assert (answer.status_code, answer.get_json()) == (200, {"status": "duplicate"})
    assert len(world.rows(InboxEvent)) == 1


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"svix-signature": "v1,AAAA"}, None),
        ({"svix-signature": "v1,!!!"}, None),
        ({"svix-signature": ""}, None),
        ({"svix-timestamp": "soon"}, None),
        ({"svix-timestamp": str(int(time.time()) - 600)}, None),
        ({"svix-id": "msg_other"}, None),
        ({}, "/webhooks/appstle/unknown-shop.myshopify.com"),
        ({}, "/webhooks/appstle/not-a-shop"),
        ({}, "/webhooks/appstle"),
        ({}, f"/webhooks/appstle/{DEMO_SHOP}/extra"),
    ],
)
def test_it_answers_401_and_stores_nothing(
    world: AppstleWorld, headers: dict[str, str], path: str | None
) -> None:
    sent = sign_appstle_webhook("loyalty.earned", CUSTOMER)
    assert world.post(sent, path, **headers).status_code == 401
    assert world.rows(InboxEvent) == []


def test_it_records_other_event_types_as_ignored(world: AppstleWorld) -> None:
    response = world.post(sign_appstle_webhook("loyalty.reward-expired", CUSTOMER))
    assert response.get_json()["status"] == "ignored"
    [event] = world.rows(InboxEvent)
    assert event.status == "ignored" and world.rows(RefreshJob) == []


def test_it_ignores_events_of_an_uninstalled_shop(world: AppstleWorld) -> None:
    with world.runtime.transaction() as session:
        session.scalars(select(Store)).one().status = "uninstalled"
    response = world.post(sign_appstle_webhook("loyalty.earned", CUSTOMER))
    assert response.get_json() == {"status": "ignored", "reason": "store has uninstalled the app"}
    assert world.rows(RefreshJob) == []


def test_it_verifies_with_the_secrets_stored_for_appstle_alone(world: AppstleWorld) -> None:
    world.process(world.accepted(secret=WHSEC_PREVIOUS))
    assert len(world.capture.received()) == 1
