"""The inbox: drains claim chunks of pending rows, side by side; events that name no
customer are ignored; app events create and uninstall stores."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
import redis

from tests.conftest import SALLA_SECRET
from tests.factories import encode, salla_event, salla_headers
from tests.pipeline_world import SallaWorld
from worker import dispatch, tasks
from worker.pipeline import inbox
from worker.storage.models import InboxEvent, RefreshJob, Store

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


def test_a_drain_claims_a_chunk_and_rings_for_the_rest(
    world: SallaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = redis.Redis.from_url(world.runtime.settings.broker_url)
    monkeypatch.setattr(tasks, "DRAIN_CHUNK", 2)

    def drains() -> int:  # the refresh jobs made due at once ring the dispatcher beside them
        return sum(dispatch.DRAIN_INBOX.encode() in m for m in broker.lrange("events", 0, -1))

    ids = [world.post("customer.updated", id=1000 + n) for n in range(3)]
    assert drains() == 1 and broker.exists(dispatch.BELL_KEY)
    # A full chunk: the bell is answered, then rung again for the row left.
    assert tasks.drain_inbox() == 2
    assert drains() == 2 and broker.exists(dispatch.BELL_KEY)
    # The last row: nothing rung, the bell stays clear for the receiver's next batch.
    assert tasks.drain_inbox() == 1
    assert drains() == 2 and not broker.exists(dispatch.BELL_KEY)
    assert tasks.drain_inbox() == 0
    assert {e.id: e.status for e in world.rows(InboxEvent)} == dict.fromkeys(ids, "done")
    assert len(world.rows(RefreshJob)) == 3
    broker.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_drains_side_by_side_skip_each_others_rows(world: SallaWorld) -> None:
    first, *rest = [world.post("customer.updated", id=2000 + n) for n in range(3)]
    url = world.runtime.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as other:  # another drain holds the oldest row
        other.execute("SELECT id FROM inbox_events WHERE id = %s FOR UPDATE", (first,))
        assert inbox.claim_pending(world.runtime, 10) == rest
    assert inbox.claim_pending(world.runtime, 10) == [first]


def test_it_marks_events_for_guests_as_ignored(world: SallaWorld) -> None:
    inbox_id = world.post("order.created", id=1, customer=None)
    assert inbox.handle(world.runtime, world.platforms, inbox_id) == []
    [event] = world.rows(InboxEvent)
    assert event.status == "ignored" and "customer" in (event.reason or "")


def test_it_creates_and_uninstalls_stores_from_app_events(world: SallaWorld) -> None:
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
