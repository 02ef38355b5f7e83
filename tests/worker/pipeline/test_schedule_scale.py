"""The scheduler at scale: bounded batches, each committed on its own, chunked
messages, and reconciliation sized by each store's API budget. Real databases
(SQLite and PostgreSQL) and real Redis; the merchant's default settings."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from sqlalchemy import func, insert, select

from tests.factories import add_salla_store, add_webhook_sink
from tests.listening import listening
from worker import tasks
from worker.pipeline import schedule
from worker.points import CHANGE_KINDS, EXPIRED, EXPIRING_SOON
from worker.runtime import Runtime
from worker.sandbox.capture import capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import CustomerPoints, Delivery, RateBudget, RefreshJob, Sink, Store

TEN_IN_RIYADH = datetime(2026, 11, 23, 7, 15, tzinfo=UTC)  # 10:15 in Asia/Riyadh


def customers(
    runtime: Runtime, store: Store, count: int, expiry: datetime, fetched: datetime,
    sink: bool = True,
) -> None:  # fmt: skip
    """A store with one webhook sink (unless ``sink`` is False) and ``count``
    customers, in one INSERT."""
    contact = runtime.cipher.seal({})
    rows = [
        {"store_id": store.id, "customer_id": f"c{n:05d}", "available": Decimal(300),
         "pending": Decimal(0), "used": Decimal(0), "next_expiry_at": expiry,
         "next_expiry_points": Decimal(100), "fetched_at": fetched, "contact": contact,
         "excluded": False}
        for n in range(count)
    ]  # fmt: skip
    with runtime.transaction() as session:
        if sink:
            session.add(Sink(store_id=store.id, kind="webhook", config=runtime.cipher.seal({}),
                             kinds=list(CHANGE_KINDS)))  # fmt: skip
        session.execute(insert(CustomerPoints), rows)


def reminded(runtime: Runtime, event_type: str = EXPIRING_SOON) -> list[str]:
    with runtime.sessions() as session:
        query = select(Delivery.customer_id).where(Delivery.event_type == event_type)
        return sorted(str(customer) for customer in session.scalars(query))


def test_it_reminds_every_due_customer_in_bounded_batches(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "BATCH", 3)
    customers(
        runtime, add_salla_store(runtime), 8, TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH
    )
    sizes = [len(b.deliveries) for b in schedule.expiry_batches(runtime, TEN_IN_RIYADH)]
    assert sizes == [3, 3, 2]
    assert reminded(runtime) == [f"c{n:05d}" for n in range(8)]


def test_it_keeps_the_batches_committed_before_a_crash_and_resumes_without_repeats(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "BATCH", 3)
    customers(
        runtime, add_salla_store(runtime), 8, TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH
    )
    batches = schedule.expiry_batches(runtime, TEN_IN_RIYADH)
    assert len(next(batches).deliveries) == 3
    batches.close()  # the task's time limit, between two batches
    assert len(reminded(runtime)) == 3
    rerun = schedule.expiry_notices(runtime, TEN_IN_RIYADH + timedelta(minutes=15))
    assert len(rerun.deliveries) == 5
    assert reminded(runtime) == [f"c{n:05d}" for n in range(8)]  # each customer once


def test_it_reminds_only_the_stores_in_their_reminder_hour(runtime: Runtime) -> None:
    riyadh = add_salla_store(runtime, "riyadh")
    utc = add_salla_store(runtime, "utc")
    with runtime.transaction() as session:
        session.get_one(Store, utc.id).timezone = "UTC"  # 07:15 there
    customers(runtime, riyadh, 2, TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH)
    customers(runtime, utc, 2, TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH)
    assert len(schedule.expiry_notices(runtime, TEN_IN_RIYADH).deliveries) == 2
    with runtime.sessions() as session:
        stores = set(session.scalars(select(Delivery.store_id)))
    assert stores == {riyadh.id}


def test_it_announces_expiries_of_many_stores_and_refreshes_each_customer(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "BATCH", 4)
    later = TEN_IN_RIYADH + timedelta(hours=5)
    for merchant in ("one", "two", "three"):
        customers(runtime, add_salla_store(runtime, merchant), 3, TEN_IN_RIYADH, TEN_IN_RIYADH)
    notices = schedule.expiry_notices(runtime, later)
    assert len(notices.deliveries) == 9 and len(notices.refreshes) == 9
    assert len(reminded(runtime, EXPIRED)) == 9
    assert schedule.expiry_notices(runtime, later).deliveries == []


def test_it_sends_the_scheduler_deliveries_in_chunks(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    customers(runtime, add_salla_store(runtime), 120, now - timedelta(hours=1), now)
    assert tasks.expiry_notices() == 120
    tasks.dispatch_due()  # the rows are due: one dispatch hands every delivery out
    client = redis.Redis.from_url(runtime.settings.broker_url)
    messages = [json.loads(m) for m in client.lrange("deliveries", 0, -1)]
    client.close()
    chunks = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]
    assert sorted(len(chunk) for chunk in chunks) == [20, 50, 50]
    assert len({i for chunk in chunks for i in chunk}) == 120


def test_it_delivers_a_chunk_of_notices_to_a_real_endpoint(
    runtime: Runtime, serve: Callable[[Any], RunningServer]
) -> None:
    secret = new_secret()
    app = create_capture_app(secret)
    server = serve(app)
    store = add_salla_store(runtime)
    add_webhook_sink(runtime, store, f"{server.url}/hooks", secret)
    now = datetime.now(UTC)
    customers(runtime, store, 3, now - timedelta(hours=1), now, sink=False)
    notices = schedule.expiry_notices(runtime, now)
    tasks.deliver_many([due.delivery_id for due in notices.deliveries])
    received = capture_log(app).received()
    assert sorted(r.data["customer_id"] for r in received) == ["c00000", "c00001", "c00002"]
    assert all(r.verified and r.type == EXPIRED for r in received)
    with runtime.sessions() as session:
        assert set(session.scalars(select(Delivery.status))) == {"delivered"}


def test_it_reconciles_as_many_customers_as_the_store_budget_share_allows(
    runtime: Runtime,
) -> None:
    now = datetime.now(UTC)
    store = add_salla_store(runtime)
    customers(runtime, store, 40, now + timedelta(days=90), now - timedelta(days=2))
    # Salla: 500 calls / 10 min = 250 per 5-minute run; a quarter, 2 calls a refresh: 31.
    assert len(schedule.reconcile(runtime, now)) == 31
    # Those 31 are still queued: no spare budget left for more in this run's window.
    assert schedule.reconcile(runtime, now) == []
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RefreshJob)) == 31


def test_it_reconciles_the_least_recently_fetched_first(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    store = add_salla_store(runtime)
    customers(runtime, store, 40, now + timedelta(days=90), now - timedelta(days=2))
    with runtime.transaction() as session:
        session.get_one(CustomerPoints, (store.id, "c00039")).fetched_at = now - timedelta(days=9)
    schedule.reconcile(runtime, now)
    with runtime.sessions() as session:
        assert session.scalar(select(RefreshJob.id).where(RefreshJob.customer_id == "c00039"))


def test_it_does_not_reconcile_a_store_its_platform_blocked(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    store = add_salla_store(runtime)
    customers(runtime, store, 3, now + timedelta(days=90), now - timedelta(days=2))
    with runtime.transaction() as session:
        session.add(RateBudget(key=f"store:{store.id}:customers", tokens=0.0, updated_at=now,
                               blocked_until=now + timedelta(minutes=5)))  # fmt: skip
    assert schedule.reconcile(runtime, now) == []


def test_it_sizes_reconciliation_by_each_platform_budget(runtime: Runtime) -> None:
    settings = runtime.settings  # per 5-minute run, a quarter of the budget, 2 calls each
    assert schedule.reconcile_allowance(settings, "salla", 0) == 31  # 500 / 10 min
    assert schedule.reconcile_allowance(settings, "zid", 0) == 37  # 60 / min
    assert schedule.reconcile_allowance(settings, "shopify", 0) == 75  # Appstle 120 / min
    assert schedule.reconcile_allowance(settings, "salla", 30) == 1
    assert schedule.reconcile_allowance(settings, "salla", 40) == 0


def test_a_batch_of_many_stores_is_claimed_in_one_statement(runtime: Runtime) -> None:
    """A batch spans as many stores as are due at once; the markers of all its rows
    are set by one UPDATE, not one per store (a reminder hour's 40 batches of 500
    among 1,000 stores were some 16,000 statements)."""

    for merchant in ("one", "two", "three", "four", "five"):
        store = add_salla_store(runtime, merchant)
        customers(runtime, store, 2, TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH)
    claims: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE CUSTOMER_POINTS"):
            claims.append(statement)

    with listening(runtime.engine, before_cursor_execute=seen):
        notices = schedule.expiry_notices(runtime, TEN_IN_RIYADH)
    assert len(notices.deliveries) == 10
    assert len(claims) == 1
    assert schedule.expiry_notices(runtime, TEN_IN_RIYADH).deliveries == []  # all marked
