"""A 429 with a reset must not release every waiting job of the store at one instant.

One store, forty customers waiting, the Salla sandbox answering the first call
429 with ``Retry-After: 60`` (over real HTTP): the first job is rescheduled by
the answer, the other thirty-nine by the store's blocked budget. Their due
times must be spread after the reset, not stacked on it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.factories import MERCHANT, add_salla_store
from worker import backoff
from worker.pipeline import refresh
from worker.platforms import build_platforms
from worker.runtime import Runtime
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState
from worker.sandbox.server import RunningServer
from worker.storage.models import RefreshJob, utcnow

CUSTOMERS = [str(1257881400 + number) for number in range(40)]


def test_it_spreads_the_jobs_one_reset_reschedules(
    runtime: Runtime, serve: Callable[[Any], RunningServer]
) -> None:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    for customer in CUSTOMERS:
        salla.set_entries(MERCHANT, customer, [])
    salla.fail_next(1, status=429, retry_after=60)
    store = add_salla_store(runtime, api_base=serve(create_salla_sandbox(salla)).url)
    with runtime.transaction() as session:
        jobs = [
            due.job_id
            for customer in CUSTOMERS
            for due in refresh.request(runtime.settings, session, store.id, customer, False)
        ]
    platforms, started = build_platforms(runtime.settings), utcnow()
    for job_id in jobs:
        with pytest.raises(refresh.Reschedule):
            refresh.run(runtime, platforms, job_id)
    with runtime.sessions() as session:
        due = sorted(session.get_one(RefreshJob, job_id).due_at for job_id in jobs)
    assert due[0] >= started + timedelta(seconds=58)  # nobody comes back before the reset
    assert due[-1] - due[0] >= timedelta(seconds=5)  # spread over a quarter of the wait
    assert len(set(due)) == len(due)
    # No second holds many: uniform over the spread, the busiest second holds 5-8 of
    # the forty, over 15 once in 20,000 (a stack, or a spread of two seconds, 20-40).
    assert max(sum(1 for t in due if abs((t - s).total_seconds()) < 0.5) for s in due) <= 15


def test_a_server_wait_gets_spread_after_it_never_before() -> None:
    delays = [backoff.retry_delay(1, 10, 3600, 60, random.Random(seed)) for seed in range(200)]
    assert min(delays) >= 60 and max(delays) <= 75
    assert max(delays) - min(delays) > 10
