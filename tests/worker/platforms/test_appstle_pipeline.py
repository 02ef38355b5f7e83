"""An Appstle (Svix) webhook through the real receiver, the inbox, a refresh
against the Appstle sandbox and a delivery to a signed-webhook capture server;
real database."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.factories import add_webhook_sink
from tests.pipeline_support import all_rows, process_event
from tests.worker.platforms.appstle_support import CUSTOMER, WHSEC, WHSEC_PREVIOUS, credentials
from web import create_app
from worker.pipeline import outbox
from worker.platforms.appstle import AppstlePlatform
from worker.platforms.base import Platform, SampleDelivery, StoreUpdate
from worker.platforms.shopify import ShopifyPlatform
from worker.runtime import Runtime
from worker.sandbox.appstle import (
    DEMO_SHOP,
    QUICKSTART,
    REFERENCE,
    AppstleSandboxState,
    create_appstle_sandbox,
    sign_appstle_webhook,
)
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import InboxEvent, RefreshJob, Store
from worker.stores import save_store

NOW = datetime.now(UTC)
Serve = Callable[[Any], RunningServer]
# How ``stores add shopify --appstle-webhook-secret`` stores them.
APPSTLE_SECRETS = {"appstle_webhook_secrets": [WHSEC, WHSEC_PREVIOUS]}
# Until the receiver hands Appstle its own key, its
# lookup reads ``webhook_secrets``: the world's store holds the secrets under both.


@dataclasses.dataclass
class World:
    runtime: Runtime
    platforms: dict[str, Platform]
    appstle: AppstleSandboxState
    capture: CaptureLog
    client: FlaskClient

    def post(self, sent: SampleDelivery, path: str | None = None, **headers: str) -> TestResponse:
        return self.client.post(path or sent.path, data=sent.body, headers=sent.headers | headers)

    def accepted(self, event: str = "loyalty.earned", secret: str = WHSEC) -> int:
        response = self.post(sign_appstle_webhook(event, CUSTOMER, secret=secret))
        assert response.status_code == 200, response.get_json()
        return int(response.get_json()["id"])

    def process(self, inbox_id: int) -> list[outbox.Due]:
        return process_event(self.runtime, self.platforms, inbox_id)

    def rows(self, model: Any) -> list[Any]:
        return all_rows(self.runtime, model)


def make_world(runtime: Runtime, serve: Serve, stored: dict[str, Any]) -> World:
    appstle = AppstleSandboxState()
    appstle.add_shop(DEMO_SHOP, credentials()["appstle_api_key"])
    appstle.set_customer(
        DEMO_SHOP, CUSTOMER, available=120, pending=0, tier="Silver",
        expiring=20, expire_at=NOW + timedelta(days=10),
    )  # fmt: skip
    api = serve(create_appstle_sandbox(appstle))
    secret = new_secret()
    capture_app = create_capture_app(secret)
    sink = serve(capture_app)
    with runtime.transaction() as session:
        update = StoreUpdate(status="active", credentials=credentials(**stored))
        store = save_store(runtime, session, "shopify", DEMO_SHOP, update, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    client = create_app(runtime.settings).test_client()
    platforms: dict[str, Platform] = {
        "appstle": AppstlePlatform(runtime.settings),
        "shopify": ShopifyPlatform(runtime.settings),  # refreshes go by the store's platform
    }
    return World(runtime, platforms, appstle, capture_log(capture_app), client)


@pytest.fixture
def world(runtime: Runtime, serve: Serve) -> World:
    return make_world(runtime, serve, APPSTLE_SECRETS)


def test_it_delivers_a_signed_update_for_a_loyalty_event(world: World) -> None:
    world.process(world.accepted())
    [received] = world.capture.received()
    assert received.verified and received.type == "points.balance_changed"
    data = received.data
    assert (data["platform"], data["store"], data["customer_id"]) == (
        "shopify", f"shopify:{DEMO_SHOP}", CUSTOMER,
    )  # fmt: skip
    assert (data["balance_after"], data["next_expiry_points"], data["tier"]) == (120, 20, "Silver")
    [event] = world.rows(InboxEvent)
    assert (event.platform, event.store_ref, event.event_type, event.status) == (
        "appstle", DEMO_SHOP, "loyalty.earned", "done",
    )  # fmt: skip
    assert [job.slot for job in world.rows(RefreshJob)] == ["soon"]


@pytest.mark.parametrize("form", [REFERENCE, QUICKSTART])
def test_it_refreshes_against_an_api_that_reads_only_one_form(world: World, form: str) -> None:
    """Appstle's two docs spell the customer differently; either API gets its balance read."""
    world.appstle.forms = frozenset({form})
    world.process(world.accepted("point.earned"))
    [received] = world.capture.received()
    assert received.data["balance_after"] == 120
    assert world.appstle.requests()[-1].form == form


def test_it_sends_the_tier_change_after_a_vip_event(world: World) -> None:
    world.process(world.accepted())
    world.appstle.set_customer(DEMO_SHOP, CUSTOMER, available=120, tier="Gold")
    world.process(world.accepted("loyalty.vip-tier-achieved"))
    latest = world.capture.received()[-1]
    assert "points.tier_changed" in latest.data["kinds"] and latest.data["tier"] == "Gold"


def test_it_accepts_both_secrets_and_dedupes_a_retry(world: World) -> None:
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
    world: World, headers: dict[str, str], path: str | None
) -> None:
    sent = sign_appstle_webhook("loyalty.earned", CUSTOMER)
    assert world.post(sent, path, **headers).status_code == 401
    assert world.rows(InboxEvent) == []


def test_it_records_other_event_types_as_ignored(world: World) -> None:
    response = world.post(sign_appstle_webhook("loyalty.reward-expired", CUSTOMER))
    assert response.get_json()["status"] == "ignored"
    [event] = world.rows(InboxEvent)
    assert event.status == "ignored" and world.rows(RefreshJob) == []


def test_it_ignores_events_of_an_uninstalled_shop(world: World) -> None:
    with world.runtime.transaction() as session:
        session.scalars(select(Store)).one().status = "uninstalled"
    response = world.post(sign_appstle_webhook("loyalty.earned", CUSTOMER))
    assert response.get_json() == {"status": "ignored", "reason": "store has uninstalled the app"}
    assert world.rows(RefreshJob) == []


def test_it_verifies_with_the_secrets_stored_for_appstle_alone(
    runtime: Runtime, serve: Serve
) -> None:
    world = make_world(runtime, serve, APPSTLE_SECRETS)
    world.process(world.accepted(secret=WHSEC_PREVIOUS))
    assert len(world.capture.received()) == 1
