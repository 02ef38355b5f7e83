"""The per-store budget, shared through the database."""

from __future__ import annotations

from datetime import timedelta

from worker import quota
from worker.runtime import Runtime
from worker.storage.models import utcnow


def take(runtime: Runtime, limit: int = 30, window: float = 60.0, at: object = None) -> float:
    with runtime.transaction() as session:
        return quota.take(session, "store:1:customers", limit, window, at or utcnow())  # type: ignore[arg-type]


def test_it_allows_a_burst_then_asks_to_wait(runtime: Runtime) -> None:
    now = utcnow()
    assert [take(runtime, at=now) for _ in range(3)] == [0.0, 0.0, 0.0]  # a tenth of 30
    assert 2.2 < take(runtime, at=now) <= 2.23  # then one token every 60/27 s


def test_it_refills_over_time(runtime: Runtime) -> None:
    now = utcnow()
    for _ in range(3):
        take(runtime, at=now)
    assert take(runtime, at=now + timedelta(seconds=2.3)) == 0.0


def test_it_never_allows_more_than_the_limit_in_any_window(runtime: Runtime) -> None:
    start, allowed, clock = utcnow(), 0, 0.0
    while clock < 60.0:  # callers that retry as soon as they are told
        wait = take(runtime, at=start + timedelta(seconds=clock))
        allowed += wait == 0.0
        clock += max(wait, 0.001)
    assert allowed <= 30


def test_it_obeys_retry_after_from_the_platform(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.transaction() as session:
        quota.observe(session, "store:1:customers", 30, {"retry-after": "30"}, now)
    assert take(runtime, at=now + timedelta(seconds=1)) > 28


def test_it_blocks_until_reset_when_nothing_remains(runtime: Runtime) -> None:
    now = utcnow()
    reset = str(int(now.timestamp()) + 45)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    with runtime.transaction() as session:
        quota.observe(session, "store:1:customers", 30, headers, now)
    assert 40 < take(runtime, at=now) <= 45


def test_it_caps_tokens_by_what_the_platform_says_remains(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.transaction() as session:
        quota.observe(session, "store:1:customers", 30, {"x-ratelimit-remaining": "1"}, now)
    assert take(runtime, at=now) == 0.0
    assert take(runtime, at=now) > 0
