"""Customers needing attention: held refresh jobs not resolved by a later fetch,
read from the newest held job back, at most ``read`` of them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.factories import add_salla_store
from worker.pipeline.held import HELD, needing_attention
from worker.runtime import Runtime
from worker.storage.models import CustomerPoints, RefreshJob, utcnow


def hold(runtime: Runtime, store_id: int, customer: str, hours_ago: int) -> None:
    finished = utcnow() - timedelta(hours=hours_ago)
    with runtime.transaction() as session:
        session.add(
            RefreshJob(store_id=store_id, customer_id=customer, slot="soon", due_at=finished,
                       status=HELD, finished_at=finished)
        )  # fmt: skip


def fetched(runtime: Runtime, store_id: int, customer: str, hours_ago: int) -> None:
    zero = Decimal(0)
    with runtime.transaction() as session:
        session.add(
            CustomerPoints(store_id=store_id, customer_id=customer, available=zero, pending=zero,
                           used=zero, next_expiry_points=zero,
                           fetched_at=utcnow() - timedelta(hours=hours_ago))
        )  # fmt: skip


def test_it_counts_held_customers_not_fetched_since(runtime: Runtime) -> None:
    store = add_salla_store(runtime).id
    for customer, hours_ago in [("a", 5), ("a", 4), ("b", 3), ("c", 2)]:
        hold(runtime, store, customer, hours_ago)
    fetched(runtime, store, "b", hours_ago=1)  # applied after its held job: resolved
    fetched(runtime, store, "c", hours_ago=9)  # before it: still held
    with runtime.sessions() as session:
        assert needing_attention(session) == {store: 2}  # a (twice held), c


def test_it_reads_the_newest_held_jobs_only(runtime: Runtime) -> None:
    first, second = add_salla_store(runtime).id, add_salla_store(runtime, "98765").id
    hold(runtime, second, "old", hours_ago=9)
    hold(runtime, first, "newer", hours_ago=2)
    hold(runtime, first, "newest", hours_ago=1)
    with runtime.sessions() as session:
        assert needing_attention(session, read=1) == {first: 1}
        assert needing_attention(session, read=2) == {first: 2}
        assert needing_attention(session, read=3) == {first: 2, second: 1}
