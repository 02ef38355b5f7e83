"""Expiry reminders, expiry announcements and reconciliation, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from tests.factories import CUSTOMER, add_salla_store
from worker.pipeline import schedule
from worker.points import CHANGE_KINDS, EXPIRED, EXPIRING_SOON
from worker.runtime import Runtime
from worker.storage.models import CustomerPoints, Delivery, RefreshJob, Sink, Store

TEN_IN_RIYADH = datetime(2026, 11, 23, 7, 15, tzinfo=UTC)  # 10:15 in Asia/Riyadh


def customer(runtime: Runtime, store: Store, expiry: datetime, fetched: datetime) -> None:
    with runtime.transaction() as session:
        session.add(Sink(store_id=store.id, kind="webhook", config=runtime.cipher.seal({}),
                         kinds=list(CHANGE_KINDS)))  # fmt: skip
        session.add(CustomerPoints(
            store_id=store.id, customer_id=CUSTOMER, available=Decimal(300), pending=Decimal(0),
            used=Decimal(0), next_expiry_at=expiry, next_expiry_points=Decimal(100),
            fetched_at=fetched, contact=runtime.cipher.seal({}),
        ))  # fmt: skip


def deliveries(runtime: Runtime) -> list[Delivery]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.created_at)))


def test_it_reminds_once_in_the_store_reminder_hour(runtime: Runtime) -> None:
    customer(runtime, add_salla_store(runtime), TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH)
    assert schedule.expiry_notices(runtime, TEN_IN_RIYADH - timedelta(hours=1)).deliveries == []
    notices = schedule.expiry_notices(runtime, TEN_IN_RIYADH)
    assert len(notices.deliveries) == 1
    assert schedule.expiry_notices(runtime, TEN_IN_RIYADH + timedelta(minutes=15)).deliveries == []
    [delivery] = deliveries(runtime)
    assert delivery.event_type == EXPIRING_SOON
    assert delivery.payload["next_expiry_points"] == 100
    assert delivery.payload["next_expiry_date"] == "2026-11-26"


def test_it_does_not_remind_about_distant_expiries(runtime: Runtime) -> None:
    customer(runtime, add_salla_store(runtime), TEN_IN_RIYADH + timedelta(days=30), TEN_IN_RIYADH)
    assert schedule.expiry_notices(runtime, TEN_IN_RIYADH).deliveries == []


def test_it_reminds_again_for_a_new_expiry_date(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    customer(runtime, store, TEN_IN_RIYADH + timedelta(days=3), TEN_IN_RIYADH)
    schedule.expiry_notices(runtime, TEN_IN_RIYADH)
    with runtime.transaction() as session:
        row = session.get_one(CustomerPoints, (store.id, CUSTOMER))
        row.next_expiry_at = TEN_IN_RIYADH + timedelta(days=5)
    assert len(schedule.expiry_notices(runtime, TEN_IN_RIYADH + timedelta(days=1)).deliveries) == 1


def test_it_announces_an_expiry_once_and_refreshes_the_customer(runtime: Runtime) -> None:
    customer(runtime, add_salla_store(runtime), TEN_IN_RIYADH - timedelta(hours=2), TEN_IN_RIYADH)
    later = TEN_IN_RIYADH + timedelta(hours=3)  # not the reminder hour: announcements still go
    notices = schedule.expiry_notices(runtime, later)
    assert len(notices.deliveries) == 1 and len(notices.refreshes) == 1
    assert schedule.expiry_notices(runtime, later).deliveries == []
    assert [d.event_type for d in deliveries(runtime)] == [EXPIRED]


def test_it_reconciles_customers_not_seen_for_a_day(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    customer(runtime, add_salla_store(runtime), now + timedelta(days=90), now - timedelta(days=2))
    assert len(schedule.reconcile(runtime, now)) == 1
    assert schedule.reconcile(runtime, now) == []  # coalesced into the pending job
    with runtime.sessions() as session:
        [job] = session.scalars(select(RefreshJob))
    assert job.customer_id == CUSTOMER


def test_it_leaves_recently_seen_customers_alone(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    customer(runtime, add_salla_store(runtime), now + timedelta(days=90), now - timedelta(hours=1))
    assert schedule.reconcile(runtime, now) == []
