"""A Zid webhook through the real receiver, the inbox, a refresh against the
Zid sandbox and a delivery to a signed-webhook capture server; real database."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.pipeline_world import NOW, ZID_APP_TOKEN, ZID_CUSTOMER, ZidWorld
from tests.worker.platforms.zid_support import PREVIOUS_SECRET, SECRET
from worker.pipeline import inbox, refresh
from worker.platforms.zid import samples
from worker.sandbox.zid import DEMO_REFRESH_TOKEN, DEMO_STORE
from worker.storage.models import InboxEvent, RefreshJob, Store

CUSTOMER = ZID_CUSTOMER
APP_TOKEN = ZID_APP_TOKEN
pytestmark = pytest.mark.parametrize("world", ["zid"], indirect=True)


def test_it_delivers_a_signed_update_for_an_order(world: ZidWorld) -> None:
    world.process(world.accepted())
    data = world.only_update("zid", DEMO_STORE, CUSTOMER).data
    assert (data["balance_before"], data["balance_after"], data["next_expiry_points"]) == (
        0, 900, 100,
    )  # fmt: skip
    riyadh = (NOW + timedelta(days=3)).astimezone(ZoneInfo("Asia/Riyadh"))
    assert data["next_expiry_date"] == riyadh.date().isoformat()


def test_it_sends_the_change_when_points_are_credited(world: ZidWorld) -> None:
    world.process(world.accepted())
    world.sandbox.add_points(DEMO_STORE, CUSTOMER, 250)
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
    world: ZidWorld, authorization: str, path: str | None
) -> None:
    assert world.post(authorization=authorization, path=path).status_code == 401
    assert world.rows(InboxEvent) == []


def test_it_accepts_both_credentials_and_dedupes_a_retry(world: ZidWorld) -> None:
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


def test_it_answers_400_for_a_body_that_is_not_an_object(world: ZidWorld) -> None:
    assert world.post(body=b"[1, 2]").status_code == 400
    assert world.rows(InboxEvent) == []


def test_it_records_other_events_as_ignored(world: ZidWorld) -> None:
    response = world.post("product.update")
    assert response.get_json()["status"] == "ignored"
    [event] = world.rows(InboxEvent)
    assert event.status == "ignored" and "does not affect points" in (event.reason or "")


def test_it_ignores_events_of_an_uninstalled_store(world: ZidWorld) -> None:
    with world.runtime.transaction() as session:
        session.get_one(Store, world.store.id).status = "uninstalled"
    response = world.post()
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert world.rows(InboxEvent)[0].reason == "store has uninstalled the app"


def test_it_refreshes_an_expired_token_once_and_keeps_all_three(world: ZidWorld) -> None:
    world.sandbox.expire_token(DEMO_STORE)
    world.process(world.accepted())
    assert len(world.sandbox.refreshes()) == 1 and len(world.capture.received()) == 1
    stored = world.credentials()
    tokens = (stored["authorization"], stored["manager_token"], stored["refresh_token"])
    assert tokens == world.sandbox.tokens(DEMO_STORE)
    assert stored["webhook_secrets"] == [SECRET, PREVIOUS_SECRET]


def test_it_stops_a_store_whose_refresh_token_is_spent(world: ZidWorld) -> None:
    world.sandbox.expire_token(DEMO_STORE)
    world.sandbox.exchange(DEMO_REFRESH_TOKEN)  # spent elsewhere: Zid revokes on reuse
    world.process(world.accepted())
    [job] = world.rows(RefreshJob)
    [store] = world.rows(Store)
    assert job.status == "failed" and "re-authorization" in (job.last_error or "")
    assert store.status == "needs_reauth" and world.capture.received() == []


def test_it_waits_out_a_429_without_counting_a_failure(world: ZidWorld) -> None:
    world.sandbox.fail_next(1, status=429, retry_after=30)
    [due] = inbox.handle(world.runtime, world.platforms, world.accepted())
    with pytest.raises(refresh.Reschedule) as later:
        refresh.run(world.runtime, world.platforms, due.job_id)
    assert later.value.countdown >= 30
    [job] = world.rows(RefreshJob)
    assert (job.status, job.attempts) == ("retrying", 0) and "rate limit" in (job.last_error or "")


def app_event(world: ZidWorld, event: str) -> None:
    """Zid's published app event for this store, through the receiver."""
    delivery = samples.build(event, DEMO_STORE, None, APP_TOKEN)
    response = world.client.post(delivery.path, data=delivery.body, headers=delivery.headers)
    assert response.status_code == 200, response.get_json()
    inbox.handle(world.runtime, world.platforms, int(response.get_json()["id"]))


def test_it_calls_zid_for_no_store_the_app_lifecycle_paused_or_removed(world: ZidWorld) -> None:
    app_event(world, "app.market.subscription.expired")
    world.process(world.accepted("order.create"))
    [store] = world.rows(Store)
    assert (store.status, store.status_reason) == (
        "paused", "Zid subscription expired (grace period over)",
    )  # fmt: skip
    assert world.sandbox.requests() == [] and world.capture.received() == []
    assert all(job.status == "failed" for job in world.rows(RefreshJob))

    app_event(world, "app.market.subscription.renew")
    world.process(world.accepted("order.status.update"))
    assert world.rows(Store)[0].status == "active"
    assert len(world.capture.received()) == 1  # calls Zid again once renewed

    app_event(world, "app.market.application.uninstall")
    calls = len(world.sandbox.requests())
    world.process(world.accepted("customer.update"))  # the receiver's lookup may lag briefly
    assert world.rows(Store)[0].status == "uninstalled"
    latest = max(world.rows(InboxEvent), key=lambda row: row.id)
    assert (latest.event_type, latest.reason) == (
        "customer.update",
        "store has uninstalled the app",
    )
    assert len(world.sandbox.requests()) == calls
