"""Event → refresh → change → delivery, in process, against the Salla sandbox
and a signed-webhook capture server over real HTTP and a real database."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.factories import CUSTOMER, MERCHANT
from tests.pipeline_world import NOW, SallaWorld, entry
from worker import quota
from worker.pipeline import inbox, refresh
from worker.storage.models import CustomerPoints, Delivery, RefreshJob, Store

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


def test_it_delivers_a_signed_update_for_a_new_balance(world: SallaWorld) -> None:
    world.process(world.post())
    received = world.only_update("salla", MERCHANT, CUSTOMER)
    data = received.data
    assert (data["balance_before"], data["balance_after"]) == (0, 1000)
    assert data["next_expiry_points"] == 100
    riyadh = (NOW + timedelta(days=3)).astimezone(ZoneInfo("Asia/Riyadh"))
    assert data["next_expiry_date"] == riyadh.date().isoformat()
    [delivery] = world.rows(Delivery)
    assert delivery.status == "delivered" and received.id == delivery.id


def test_it_refreshes_an_expired_token_once_and_keeps_both_new_tokens(world: SallaWorld) -> None:
    world.sandbox.expire_access_token(MERCHANT)
    world.process(world.post())
    assert len(world.sandbox.refreshes()) == 1 and len(world.capture.received()) == 1
    access, refresh_token = world.sandbox.tokens(MERCHANT)
    with world.runtime.sessions() as session:
        store = session.get_one(Store, world.store.id)
        stored = world.runtime.cipher.open(store.credentials)
    assert (stored["access_token"], stored["refresh_token"]) == (access, refresh_token)
    assert store.token_version == world.store.token_version + 1


def test_it_stops_a_store_whose_refresh_token_is_spent(world: SallaWorld) -> None:
    world.sandbox.expire_access_token(MERCHANT)
    world.sandbox.exchange("refresh-1")  # someone else used it: Salla revokes on reuse
    world.process(world.post())
    [job] = world.rows(RefreshJob)
    [store] = world.rows(Store)
    assert job.status == "failed" and "re-authorization" in (job.last_error or "")
    assert store.status == "needs_reauth" and world.capture.received() == []


def test_it_waits_out_a_429_without_counting_a_failure(world: SallaWorld) -> None:
    world.sandbox.fail_next(1, status=429, retry_after=30)
    inbox_id = world.post()
    [due] = inbox.handle(world.runtime, world.platforms, inbox_id)
    with pytest.raises(refresh.Reschedule) as later:
        refresh.run(world.runtime, world.platforms, due.job_id)
    assert later.value.countdown >= 30
    [job] = world.rows(RefreshJob)
    assert (job.status, job.attempts) == ("retrying", 0) and "rate limit" in (job.last_error or "")
    # Every worker now waits for the same 30 s: another worker's budget says so too.
    settings = world.runtime.settings
    budget = quota.budget_for(settings.broker_url, settings.database_url, world.runtime.transaction)
    with pytest.raises(quota.RateLimited) as waiting:
        budget.take(f"store:{world.store.id}:customers", *settings.salla_quota)
    assert (waiting.value.retry_after or 0) > 25


def test_it_holds_a_balance_read_with_an_unknown_status_label(world: SallaWorld) -> None:
    odd = entry(500, expires_in=30) | {"status": "معلّقة للمراجعة"}
    world.sandbox.set_entries(MERCHANT, CUSTOMER, [entry(900, expires_in=400), odd])
    world.process(world.post())
    [job] = world.rows(RefreshJob)
    assert job.status == "held" and "معلّقة للمراجعة" in (job.last_error or "")
    assert world.capture.received() == [] and world.rows(Delivery) == []
    assert all(row.fetched_at is None for row in world.rows(CustomerPoints))
