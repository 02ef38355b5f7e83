"""A Zid webhook through the real receiver, the inbox, a refresh against the
Zid sandbox and a delivery to a signed-webhook capture server; real database."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import add_webhook_sink
from tests.pipeline_support import all_rows, process_event
from tests.worker.platforms.zid_support import PREVIOUS_SECRET, SECRET, demo_credentials
from web import create_app
from worker.pipeline import inbox, outbox, refresh
from worker.platforms.base import Platform, StoreUpdate
from worker.platforms.zid import ZidPlatform, samples
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.sandbox.zid import DEMO_REFRESH_TOKEN, DEMO_STORE, ZidSandboxState, create_zid_sandbox
from worker.signing import new_secret
from worker.storage.models import InboxEvent, RefreshJob, Store
from worker.stores import save_store

CUSTOMER = "7823146"
APP_TOKEN = "zid-app-events-token"
NOW = datetime.now(UTC)
Serve = Callable[[Any], RunningServer]


@dataclasses.dataclass
class World:
    runtime: Runtime
    platforms: dict[str, Platform]
    zid: ZidSandboxState
    capture: CaptureLog
    client: FlaskClient
    store: Store

    def post(
        self,
        event: str = "order.create",
        authorization: str = SECRET,
        path: str | None = None,
        body: bytes | None = None,
    ) -> TestResponse:
        delivery = samples.build(event, DEMO_STORE, CUSTOMER, authorization)
        return self.client.post(
            path or delivery.path, data=delivery.body if body is None else body,
            headers=delivery.headers,
        )  # fmt: skip

    def accepted(self, event: str = "order.create") -> int:
        response = self.post(event)
        assert response.status_code == 200, response.get_json()
        return int(response.get_json()["id"])

    def process(self, inbox_id: int) -> list[outbox.Due]:
        return process_event(self.runtime, self.platforms, inbox_id)

    def rows(self, model: Any) -> list[Any]:
        return all_rows(self.runtime, model)

    def credentials(self) -> dict[str, Any]:
        with self.runtime.sessions() as session:
            return self.runtime.cipher.open(session.get_one(Store, self.store.id).credentials)


@pytest.fixture
def world(runtime: Runtime, serve: Serve) -> World:
    zid = ZidSandboxState()
    zid.add_store(DEMO_STORE)
    zid.add_points(DEMO_STORE, CUSTOMER, 800, expires_in_days=300, now=NOW)
    zid.add_points(DEMO_STORE, CUSTOMER, 100, expires_in_days=3, now=NOW)
    api = serve(create_zid_sandbox(zid))
    settings = dataclasses.replace(
        runtime.settings,
        zid_oauth_token_url=f"{api.url}/oauth/token",
        zid_client_id=zid.client_id,
        zid_client_secret=zid.client_secret,
        zid_redirect_uri=zid.redirect_uri,
    )
    secret = new_secret()
    capture_app = create_capture_app(secret)
    sink = serve(capture_app)
    credentials = demo_credentials(webhook_secrets=[SECRET, PREVIOUS_SECRET])
    with runtime.transaction() as session:
        update = StoreUpdate(status="active", credentials=credentials)
        store = save_store(runtime, session, "zid", DEMO_STORE, update, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    app_events = dataclasses.replace(runtime.settings, zid_app_webhook_token=APP_TOKEN)
    client = create_app(app_events).test_client()
    platforms: dict[str, Platform] = {"zid": ZidPlatform(settings)}
    return World(runtime, platforms, zid, capture_log(capture_app), client, store)


def test_it_delivers_a_signed_update_for_an_order(world: World) -> None:
    world.process(world.accepted())
    [received] = world.capture.received()
    assert received.verified and received.type == "points.balance_changed"
    data = received.data
    assert (data["platform"], data["store"], data["customer_id"]) == (
        "zid", f"zid:{DEMO_STORE}", CUSTOMER,
    )  # fmt: skip
    assert (data["balance_before"], data["balance_after"], data["next_expiry_points"]) == (
        0, 900, 100,
    )  # fmt: skip
    riyadh = (NOW + timedelta(days=3)).astimezone(ZoneInfo("Asia/Riyadh"))
    assert data["next_expiry_date"] == riyadh.date().isoformat()


def test_it_sends_the_change_when_points_are_credited(world: World) -> None:
    world.process(world.accepted())
    world.zid.add_points(DEMO_STORE, CUSTOMER, 250)
    world.process(world.accepted("order.status.update"))
    latest = world.capture.received()[-1].data
    assert (latest["balance_before"], latest["balance_after"]) == (900, 1150)


@pytest.mark.parametrize(
    ("authorization", "path"),
    [
        ("Basic d3Jvbmc6d3Jvbmc=", None),
        ("", None),
        (SECRET, "/webhooks/zid/999/order.create"),
        (SECRET, f"/webhooks/zid/{DEMO_STORE}"),
        (SECRET, f"/webhooks/zid/{DEMO_STORE}/order.create/again"),
        (SECRET, "/webhooks/zid"),
    ],
)
def test_it_answers_401_and_stores_nothing(
    world: World, authorization: str, path: str | None
) -> None:
    assert world.post(authorization=authorization, path=path).status_code == 401
    assert world.rows(InboxEvent) == []


def test_it_accepts_both_credentials_and_dedupes_a_retry(world: World) -> None:
    body = samples.build("order.create", DEMO_STORE, CUSTOMER, SECRET).body
    first = world.post(authorization=SECRET, body=body)
    retry = world.post(authorization=PREVIOUS_SECRET, body=body)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.get_json() == {"status": "duplicate"}
    [event] = world.rows(InboxEvent)
    assert (event.platform, event.store_ref, event.event_type) == (
        "zid",
        DEMO_STORE,
        "order.create",
    )


def test_it_answers_400_for_a_body_that_is_not_an_object(world: World) -> None:
    assert world.post(body=b"[1, 2]").status_code == 400
    assert world.rows(InboxEvent) == []


def test_it_records_other_events_as_ignored(world: World) -> None:
    response = world.post("product.update")
    assert response.get_json()["status"] == "ignored"
    [event] = world.rows(InboxEvent)
    assert event.status == "ignored" and "does not affect points" in (event.reason or "")


def test_it_ignores_events_of_an_uninstalled_store(world: World) -> None:
    with world.runtime.transaction() as session:
        session.get_one(Store, world.store.id).status = "uninstalled"
    response = world.post()
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert world.rows(InboxEvent)[0].reason == "store has uninstalled the app"


def test_it_refreshes_an_expired_token_once_and_keeps_all_three(world: World) -> None:
    world.zid.expire_token(DEMO_STORE)
    world.process(world.accepted())
    assert len(world.zid.refreshes()) == 1 and len(world.capture.received()) == 1
    stored = world.credentials()
    tokens = (stored["authorization"], stored["manager_token"], stored["refresh_token"])
    assert tokens == world.zid.tokens(DEMO_STORE)
    assert stored["webhook_secrets"] == [SECRET, PREVIOUS_SECRET]


def test_it_stops_a_store_whose_refresh_token_is_spent(world: World) -> None:
    world.zid.expire_token(DEMO_STORE)
    world.zid.exchange(DEMO_REFRESH_TOKEN)  # spent elsewhere: Zid revokes on reuse
    world.process(world.accepted())
    [job] = world.rows(RefreshJob)
    [store] = world.rows(Store)
    assert job.status == "failed" and "re-authorization" in (job.last_error or "")
    assert store.status == "needs_reauth" and world.capture.received() == []


def test_it_waits_out_a_429_without_counting_a_failure(world: World) -> None:
    world.zid.fail_next(1, status=429, retry_after=30)
    [due] = inbox.handle(world.runtime, world.platforms, world.accepted())
    with pytest.raises(refresh.Reschedule) as later:
        refresh.run(world.runtime, world.platforms, due.job_id)
    assert later.value.countdown >= 30
    [job] = world.rows(RefreshJob)
    assert (job.status, job.attempts) == ("retrying", 0) and "rate limit" in (job.last_error or "")


def app_event(world: World, event: str) -> None:
    """Zid's published app event for this store, through the receiver."""
    delivery = samples.build(event, DEMO_STORE, None, APP_TOKEN)
    response = world.client.post(delivery.path, data=delivery.body, headers=delivery.headers)
    assert response.status_code == 200, response.get_json()
    inbox.handle(world.runtime, world.platforms, int(response.get_json()["id"]))


def test_it_calls_zid_for_no_store_the_app_lifecycle_paused_or_removed(world: World) -> None:
    app_event(world, "app.market.subscription.expired")
    world.process(world.accepted("order.create"))
    [store] = world.rows(Store)
    assert (store.status, store.status_reason) == (
        "paused", "Zid subscription expired (grace period over)",
    )  # fmt: skip
    assert world.zid.requests() == [] and world.capture.received() == []
    assert all(job.status == "failed" for job in world.rows(RefreshJob))

    app_event(world, "app.market.subscription.renew")
    world.process(world.accepted("order.status.update"))
    assert world.rows(Store)[0].status == "active"
    assert len(world.capture.received()) == 1  # calls Zid again once renewed

    app_event(world, "app.market.application.uninstall")
    calls = len(world.zid.requests())
    world.process(world.accepted("customer.update"))  # the receiver's lookup may lag briefly
    assert world.rows(Store)[0].status == "uninstalled"
    latest = max(world.rows(InboxEvent), key=lambda row: row.id)
    assert (latest.event_type, latest.reason) == (
        "customer.update",
        "store has uninstalled the app",
    )
    assert len(world.zid.requests()) == calls
