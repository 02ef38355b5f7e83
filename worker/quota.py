"""Per-store API budgets shared by every worker, kept in the database.

A token bucket per (store, API family) shaped so that no ``window`` ever sees
more than ``limit`` requests (a burst of a tenth of the limit, then a steady
refill). The platform's own rate-limit headers tighten
it (``X-RateLimit-Remaining`` caps the tokens, a 0 or a ``Retry-After`` blocks
until the reset), so several workers — or a second app on the same store — slow
down together instead of each discovering the limit with a 429. Jobs told to
wait are spread over a quarter of the wait after it (``worker.backoff``),
so the end of a block does not release all of a store's jobs at one instant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.errors import TransientError
from worker.http import parse_retry_after
from worker.storage.models import RateBudget, utcnow
from worker.storage.upsert import insert_ignore

MAX_INLINE_WAIT = 2.0  # seconds a worker may sleep for a token before rescheduling instead
MAX_BLOCK = 3600.0


class RateLimited(TransientError):
    """Over budget: reschedule after ``retry_after``. Not a failure, never counted as one."""


def shape(limit: int, window: float) -> tuple[float, float]:
    """(burst, refill per second) such that no window of ``window`` seconds sees more
    than ``limit`` calls: a full bucket plus a window's refill is exactly ``limit``."""
    burst = max(1.0, float(limit // 10))
    return burst, max(limit - burst, 1.0) / window


def take(session: Session, key: str, limit: int, window: float, now: datetime) -> float:
    """Take one token; return 0, or the seconds to wait before one is available."""
    burst, rate = shape(limit, window)
    budget = _locked_budget(session, key, burst, now)
    if budget.blocked_until and budget.blocked_until > now:
        return (budget.blocked_until - now).total_seconds()
    elapsed = max(0.0, (now - budget.updated_at).total_seconds())
    tokens = min(burst, budget.tokens + elapsed * rate)
    budget.updated_at = now
    if tokens >= 1.0 - 1e-9:  # float refill must not leave a caller waiting for 1e-12 s
        budget.tokens = max(0.0, tokens - 1.0)
        return 0.0
    budget.tokens = tokens
    return (1.0 - tokens) / rate


def observe(
    session: Session, key: str, limit: int, headers: Mapping[str, str], now: datetime
) -> None:
    """Fold a response's rate-limit headers into the shared budget."""
    remaining = _number(headers.get("x-ratelimit-remaining"))
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    reset = _number(headers.get("x-ratelimit-reset"))
    if remaining is None and retry_after is None:
        return
    budget = _locked_budget(session, key, shape(limit, 1.0)[0], now)
    if remaining is not None:
        budget.tokens = min(budget.tokens, remaining)
    block = _block_seconds(remaining, retry_after, reset, now)
    if block > 0:
        budget.blocked_until = now + timedelta(seconds=min(block, MAX_BLOCK))


def _block_seconds(
    remaining: float | None, retry_after: float | None, reset: float | None, now: datetime
) -> float:
    if retry_after is not None:
        return retry_after
    if remaining is not None and remaining <= 0 and reset is not None:
        return reset - now.timestamp()
    return 0.0


def _locked_budget(session: Session, key: str, burst: float, now: datetime) -> RateBudget:
    insert_ignore(session, RateBudget, {"key": key, "tokens": burst, "updated_at": now})
    query = select(RateBudget).where(RateBudget.key == key).with_for_update()
    return session.scalars(query).one()


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw.strip())
    except ValueError:
        return None


def wait_or_reschedule(wait: float, what: str) -> None:
    """Sleep through a short wait; hand a long one back to Celery."""
    if wait > MAX_INLINE_WAIT:
        raise RateLimited(f"{what}: over budget, next call in {wait:.0f}s", retry_after=wait)
    time.sleep(wait)


class DatabaseBudget:
    """``worker.sinks.base.Budget`` over the ``rate_budgets`` table: shared by every worker."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
        self._transaction = sessions

    def take(self, key: str, limit: int, window: float) -> None:
        while True:
            with self._transaction() as session:
                wait = take(session, key, limit, window, utcnow())
            if wait <= 0:
                return
            wait_or_reschedule(wait, key)

    def observe(self, key: str, limit: int, headers: Mapping[str, str]) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._transaction() as session:
            observe(session, key, limit, lowered, utcnow())


def headroom(session: Session, key: str, limit: int, window: float, now: datetime) -> float:
    """Tokens ``take`` would find now, without taking one (0 while blocked).

    Read without a lock: the dispatcher sizes what it hands a store by it, and a
    stale read only means a job meets ``take``'s own answer. No row: a full burst.
    """
    burst, rate = shape(limit, window)
    budget = session.get(RateBudget, key)
    if budget is None:
        return burst
    if budget.blocked_until and budget.blocked_until > now:
        return 0.0
    elapsed = max(0.0, (now - budget.updated_at).total_seconds())
    return min(burst, budget.tokens + elapsed * rate)
