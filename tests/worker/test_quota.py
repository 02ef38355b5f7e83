"""The per-store budget, shared through the database."""

from __future__ import annotations

from datetime import timedelta

from worker import quota
from worker.runtime import Runtime
from worker.storage.models import utcnow


def take(runtime: Runtime, limit: int = 3, window: float = 60.0, at: object = None) -> float:
    with runtime.transaction() as session:
        return quota.take(session, "store:1:customers", limit, window, at or utcnow())  # type: ignore[arg-type]


def test_it_allows_the_budget_then_asks_to_wait(runtime: Runtime) -> None:
    now = utcnow()
    assert [take(runtime, at=now) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert 19.9 < take(runtime, at=now) <= 20.0  # one token refills every 60/3 s


def test_it_refills_over_time(runtime: Runtime) -> None:
    now = utcnow()
    for _ in range(3):
        take(runtime, at=now)
    assert take(runtime, at=now + timedelta(seconds=21)) == 0.0


def test_it_obeys_retry_after_from_the_platform(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.transaction() as session:
        quota.observe(session, "store:1:customers", 3, {"retry-after": "30"}, now)
    assert take(runtime, at=now + timedelta(seconds=1)) > 28


def test_it_blocks_until_reset_when_nothing_remains(runtime: Runtime) -> None:
    now = utcnow()
    reset = str(int(now.timestamp()) + 45)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    with runtime.transaction() as session:
        quota.observe(session, "store:1:customers", 3, headers, now)
    assert 40 < take(runtime, at=now) <= 45


def test_it_caps_tokens_by_what_the_platform_says_remains(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.transaction() as session:
        quota.observe(session, "store:1:customers", 3, {"x-ratelimit-remaining": "1"}, now)
    assert take(runtime, at=now) == 0.0
    assert take(runtime, at=now) > 0
