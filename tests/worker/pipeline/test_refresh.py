"""Coalescing: a burst of events for one customer becomes one refresh job."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from tests.factories import CUSTOMER, add_salla_store
from worker.pipeline import refresh
from worker.runtime import Runtime
from worker.storage.models import RefreshJob


def jobs(runtime: Runtime) -> list[RefreshJob]:
    with runtime.sessions() as session:
        return list(session.scalars(select(RefreshJob).order_by(RefreshJob.id)))


def test_it_coalesces_a_burst_into_one_job(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    created = []
    for _ in range(20):
        with runtime.transaction() as session:
            created += refresh.request(runtime.settings, session, store.id, CUSTOMER, False)
    assert len(created) == 1 and len(jobs(runtime)) == 1


def test_it_schedules_settle_rechecks_for_order_events(runtime: Runtime) -> None:
    settings = dataclasses.replace(runtime.settings, debounce_seconds=5, settle_delays=(60, 600))
    store = add_salla_store(runtime)
    for _ in range(3):
        with runtime.transaction() as session:
            due = refresh.request(settings, session, store.id, CUSTOMER, True)
    assert due == []  # the last two calls were coalesced
    assert sorted(job.slot for job in jobs(runtime)) == ["settle1", "settle2", "soon"]
    delays = {job.slot: (job.due_at - job.created_at).total_seconds() for job in jobs(runtime)}
    assert delays == {"soon": 5, "settle1": 60, "settle2": 600}


def test_it_queues_a_new_job_once_the_pending_one_is_claimed(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        [first] = refresh.request(runtime.settings, session, store.id, CUSTOMER, False)
    with runtime.transaction() as session:
        assert refresh.claim(session, first.job_id) is not None
    with runtime.transaction() as session:
        again = refresh.request(runtime.settings, session, store.id, CUSTOMER, False)
    assert len(again) == 1 and again[0].job_id != first.job_id


def test_it_lets_only_one_worker_claim_a_job(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        [due] = refresh.request(runtime.settings, session, store.id, CUSTOMER, False)
    claims = []
    for _ in range(2):
        with runtime.transaction() as session:
            claims.append(refresh.claim(session, due.job_id))
    assert claims[0] is not None and claims[1] is None
