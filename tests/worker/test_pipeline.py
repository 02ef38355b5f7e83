"""Event → refresh → change → delivery, in process, against the Salla sandbox
and a signed-webhook capture server over real HTTP and a real database."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis
from flask.testing import FlaskClient

from tests.conftest import SALLA_SECRET
from tests.factories import (
    CUSTOMER,
    MERCHANT,
    add_salla_store,
    add_webhook_sink,
    encode,
    salla_event,
    salla_headers,
)
from tests.pipeline_support import all_rows, process_event
from web import create_app
from worker import dispatch, inbox, outbox, refresh, sweeper, tasks
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import (
    CustomerPoints,
    Delivery,
    InboxEvent,
    RateBudget,
    RefreshJob,
    Store,
)

Serve = Callable[[Any], RunningServer]
NOW = datetime.now(UTC)


@dataclasses.dataclass
class World:
    runtime: Runtime
    platforms: dict[str, Platform]
    salla: SallaSandboxState
    capture: CaptureLog
    client: FlaskClient
    store: Store

    def post(self, event: str = "order.status.updated", **data: Any) -> int:
        body = encode(salla_event(event, **data))
        response = self.client.post(
            "/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET)
        )
        assert response.status_code == 200, response.get_json()
        return int(response.get_json().get("id", 0))

    def process(self, inbox_id: int) -> list[outbox.Due]:
        return process_event(self.runtime, self.platforms, inbox_id)

    def rows(self, model: Any) -> list[Any]:
        return all_rows(self.runtime, model)


@pytest.fixture
def world(runtime: Runtime, serve: Serve) -> World:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    salla.set_entries(MERCHANT, CUSTOMER, [entry(900, expires_in=400), entry(100, expires_in=3)])
    api = serve(create_salla_sandbox(salla))
    settings = dataclasses.replace(
        runtime.settings,
        salla_oauth_token_url=f"{api.url}/oauth2/token",
        salla_client_id=salla.client_id,
        salla_client_secret=salla.client_secret,
    )
    secret = new_secret()
    capture_app = create_capture_app(secret)
    sink = serve(capture_app)
    client = create_app(runtime.settings).test_client()
    store = add_salla_store(runtime, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    return World(runtime, build_platforms(settings), salla, capture_log(capture_app), client, store)


def entry(points: int, *, expires_in: int, used: int = 0) -> dict[str, Any]:
    return points_entry(
        points, created=NOW - timedelta(days=1), expiry=NOW + timedelta(days=expires_in),
        used_points=used,
    )  # fmt: skip


def test_it_delivers_a_signed_update_for_a_new_balance(world: World) -> None:
    world.process(world.post())
    [received] = world.capture.received()
    assert received.verified and received.type == "points.balance_changed"
    data = received.data
    assert (data["platform"], data["store"], data["customer_id"]) == (
        "salla", f"salla:{MERCHANT}", CUSTOMER,
    )  # fmt: skip
    assert (data["balance_before"], data["balance_after"]) == (0, 1000)
    assert data["next_expiry_points"] == 100
    riyadh = (NOW + timedelta(days=3)).astimezone(ZoneInfo("Asia/Riyadh"))
    assert data["next_expiry_date"] == riyadh.date().isoformat()
    [delivery] = world.rows(Delivery)
    assert delivery.status == "delivered" and received.id == delivery.id


def test_it_sends_nothing_when_nothing_changed(world: World) -> None:
    world.process(world.post())
    assert world.process(world.post("customer.updated")) == []
    assert len(world.capture.received()) == 1
    assert [job.status for job in world.rows(RefreshJob)] == ["done", "done"]


def test_it_sends_the_change_when_points_are_credited(world: World) -> None:
    world.process(world.post())
    world.salla.add_points(MERCHANT, CUSTOMER, 250)
    world.process(world.post("order.updated"))
    latest = world.capture.received()[-1].data
    assert (latest["balance_before"], latest["balance_after"]) == (1000, 1250)
    [points] = world.rows(CustomerPoints)
    assert points.available == 1250


def test_it_refreshes_an_expired_token_once_and_keeps_both_new_tokens(world: World) -> None:
    world.salla.expire_access_token(MERCHANT)
    world.process(world.post())
    assert len(world.salla.refreshes()) == 1 and len(world.capture.received()) == 1
    access, refresh_token = world.salla.tokens(MERCHANT)
    with world.runtime.sessions() as session:
        store = session.get_one(Store, world.store.id)
        stored = world.runtime.cipher.open(store.credentials)
    assert (stored["access_token"], stored["refresh_token"]) == (access, refresh_token)
    assert store.token_version == world.store.token_version + 1


def test_it_stops_a_store_whose_refresh_token_is_spent(world: World) -> None:
    world.salla.expire_access_token(MERCHANT)
    world.salla.exchange("refresh-1")  # someone else used it: Salla revokes on reuse
    world.process(world.post())
    [job] = world.rows(RefreshJob)
    [store] = world.rows(Store)
    assert job.status == "failed" and "re-authorization" in (job.last_error or "")
    assert store.status == "needs_reauth" and world.capture.received() == []


def test_it_waits_out_a_429_without_counting_a_failure(world: World) -> None:
    world.salla.fail_next(1, status=429, retry_after=30)
    inbox_id = world.post()
    [due] = inbox.handle(world.runtime, world.platforms, inbox_id)
    with pytest.raises(refresh.Reschedule) as later:
        refresh.run(world.runtime, world.platforms, due.job_id)
    assert later.value.countdown >= 30
    [job] = world.rows(RefreshJob)
    assert (job.status, job.attempts) == ("retrying", 0) and "rate limit" in (job.last_error or "")
    [budget] = world.rows(RateBudget)  # every worker now waits for the same 30 s
    assert budget.blocked_until and budget.blocked_until > datetime.now(UTC) + timedelta(seconds=25)


def test_it_creates_and_uninstalls_stores_from_app_events(world: World) -> None:
    authorize = salla_event(
        "app.store.authorize", merchant="777",
        access_token="tok-a", refresh_token="tok-r", expires=2000000000, scope="x",
    )  # fmt: skip
    body = encode(authorize)
    world.client.post("/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET))
    [event] = [e for e in world.rows(InboxEvent) if e.store_ref == "777"]
    inbox.handle(world.runtime, world.platforms, event.id)
    created = next(s for s in world.rows(Store) if s.external_id == "777")
    assert created.status == "active" and created.token_expires_at == datetime.fromtimestamp(
        2000000000, UTC
    )
    assert world.runtime.cipher.open(created.credentials)["refresh_token"] == "tok-r"
    uninstall_id = world.post("app.uninstalled", merchant="777")
    inbox.handle(world.runtime, world.platforms, uninstall_id)
    assert next(s for s in world.rows(Store) if s.external_id == "777").status == "uninstalled"


def test_it_marks_events_for_guests_as_ignored(world: World) -> None:
    inbox_id = world.post("order.created", id=1, customer=None)
    assert inbox.handle(world.runtime, world.platforms, inbox_id) == []
    [event] = world.rows(InboxEvent)
    assert event.status == "ignored" and "customer" in (event.reason or "")


def test_the_sweeper_finds_rows_whose_message_was_lost(world: World) -> None:
    inbox_id = world.post()
    stale = dataclasses.replace(world.runtime, settings=dataclasses.replace(
        world.runtime.settings, stale_after_seconds=0))  # fmt: skip
    assert sweeper.sweep(stale).events == [inbox_id]
    with world.runtime.transaction() as session:
        inbox.claim(session, inbox_id)  # a worker took it and died
    assert sweeper.sweep(stale).events == [inbox_id]
    [event] = world.rows(InboxEvent)
    assert event.status == "pending"


def test_it_holds_a_balance_read_with_an_unknown_status_label(world: World) -> None:
    odd = entry(500, expires_in=30) | {"status": "معلّقة للمراجعة"}
    world.salla.set_entries(MERCHANT, CUSTOMER, [entry(900, expires_in=400), odd])
    world.process(world.post())
    [job] = world.rows(RefreshJob)
    assert job.status == "held" and "معلّقة للمراجعة" in (job.last_error or "")
    assert world.capture.received() == [] and world.rows(Delivery) == []
    assert all(row.fetched_at is None for row in world.rows(CustomerPoints))


def test_it_keeps_the_contact_an_event_gives_encrypted(world: World) -> None:
    world.process(world.post())  # the sample order names c@example.com
    [row] = world.rows(CustomerPoints)
    assert row.contact and b"c@example.com" not in row.contact
    assert world.runtime.cipher.open(row.contact)["email"] == "c@example.com"


def test_a_drain_claims_a_chunk_and_rings_for_the_rest(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = redis.Redis.from_url(world.runtime.settings.broker_url)
    monkeypatch.setattr(tasks, "DRAIN_CHUNK", 2)
    ids = [world.post("customer.updated", id=1000 + n) for n in range(3)]
    assert broker.llen("events") == 1 and broker.exists(dispatch.BELL_KEY)
    # A full chunk: the bell is answered, then rung again for the row left.
    assert tasks.drain_inbox() == 2
    assert broker.llen("events") == 2 and broker.exists(dispatch.BELL_KEY)
    # The last row: nothing rung, the bell stays clear for the receiver's next batch.
    assert tasks.drain_inbox() == 1
    assert broker.llen("events") == 2 and not broker.exists(dispatch.BELL_KEY)
    assert tasks.drain_inbox() == 0
    assert {e.id: e.status for e in world.rows(InboxEvent)} == dict.fromkeys(ids, "done")
    assert len(world.rows(RefreshJob)) == 3
    broker.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_drains_side_by_side_skip_each_others_rows(world: World) -> None:
    first, *rest = [world.post("customer.updated", id=2000 + n) for n in range(3)]
    url = world.runtime.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as other:  # another drain holds the oldest row
        other.execute("SELECT id FROM inbox_events WHERE id = %s FOR UPDATE", (first,))
        assert inbox.claim_pending(world.runtime, 10) == rest
    assert inbox.claim_pending(world.runtime, 10) == [first]
