"""Customers needing attention: held refresh jobs not resolved by a later fetch,
read from the newest held job back, at most ``read`` of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import CUSTOMER, add_salla_store
from tests.pipeline_world import World
from worker.pipeline import refresh
from worker.pipeline.held import HELD, needing_attention
from worker.runtime import Runtime
from worker.storage.models import CustomerPoints, RefreshJob, utcnow


def hold(runtime: Runtime, store_id: int, customer: str, hours_ago: int) -> None:
    hold_at(runtime, store_id, customer, utcnow() - timedelta(hours=hours_ago))


def hold_at(runtime: Runtime, store_id: int, customer: str, finished: datetime) -> None:
    note = "unknown points status labels: x; balance not computed, nothing sent"
    with runtime.transaction() as session:
        session.add(
            RefreshJob(store_id=store_id, customer_id=customer, slot="soon", due_at=finished,
                       status=HELD, finished_at=finished, last_error=note)
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


@pytest.mark.parametrize("world", ["salla"], indirect=True)
def test_an_applied_fetch_resolves_the_customers_earlier_held_jobs(world: World[Any]) -> None:
    """Held rows are kept for ops and read newest first, at most ``READ_CAP``: a
    customer a later fetch answered leaves them, so the count stays exact."""
    runtime, store = world.runtime, world.store.id
    hold(runtime, store, CUSTOMER, hours_ago=2)
    hold(runtime, store, "someone-else", hours_ago=2)
    with runtime.transaction() as session:  # held while this fetch ran: not answered by it
        [due] = refresh.request(runtime.settings, session, store, CUSTOMER, settle=False)
    later = utcnow() + timedelta(minutes=5)
    hold_at(runtime, store, CUSTOMER, later)
    refresh.run(runtime, world.platforms, due.job_id)
    jobs = {job.id: job for job in world.rows(RefreshJob)}
    assert (jobs.pop(due.job_id).status, jobs.pop(due.job_id + 1).status) == ("done", HELD)
    left = sorted((job.customer_id, job.status, job.last_error or "") for job in jobs.values())
    assert [(customer, status) for customer, status, _ in left] == [
        (CUSTOMER, "done"), ("someone-else", HELD)]  # fmt: skip
    assert left[0][2].startswith(f"{refresh.RESOLVED}; unknown points status labels")
    with runtime.sessions() as session:
        assert needing_attention(session) == {store: 2}  # the one held since, someone else
