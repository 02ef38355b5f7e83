"""Per-store API budgets shared by every worker, kept in the database.

A token bucket per (store, API family) shaped so that no ``window`` ever sees
more than ``limit`` requests (a burst of a tenth of the limit, then a steady
refill). The platform's own rate-limit headers tighten
it (``X-RateLimit-Remaining`` caps the tokens, a 0 or a ``Retry-After`` blocks
until the reset), so several workers — or a second app on the same store — slow
down together instead of each discovering the limit with a 429. Jobs told to
wait are spread over a quarter of the wait after it (``worker.backoff``),
so the end of a block does not release all of a store's jobs at one instant.

Two backends keep the same bucket. With Redis as the broker (production) it
lives in Redis: a take is one Lua script, one round trip, atomic across every
worker, and while a bucket is more than half full one script takes a block of
tokens for a process's next takes (``RedisBudget``). Without Redis (the embedded
SQLite set-up) it is a row in ``rate_budgets``, taken under a row lock
(``DatabaseBudget``). Either way a
response's headers are written back only when they tighten the budget (a
``Remaining`` below what our own take left, a block): a platform that sends its
headers on every answer costs no write per page.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.errors import TransientError
from worker.http import parse_retry_after
from worker.storage.models import RateBudget, detached_rows, utcnow
from worker.storage.upsert import insert_ignore

MAX_INLINE_WAIT = 2.0  # seconds a worker may sleep for a token before rescheduling instead
MAX_BLOCK = 3600.0
BLOCK = 8  # tokens a process takes at once from a bucket more than half full (RedisBudget)
HELD_SECONDS = 2.0  # how long a process may spend tokens it took in a block
Bucket = tuple[str, int, float]  # a budget's key, its limit and its window (seconds)


class RateLimited(TransientError):
    """Over budget: reschedule after ``retry_after``. Not a failure, never counted as one."""


def shape(limit: int, window: float) -> tuple[float, float]:
    """(burst, refill per second) such that no window of ``window`` seconds sees more
    than ``limit`` calls: a full bucket plus a window's refill is exactly ``limit``."""
    burst = max(1.0, float(limit // 10))
    return burst, max(limit - burst, 1.0) / window


def take(session: Session, key: str, limit: int, window: float, now: datetime) -> float:
    """Take one token; return 0, or the seconds to wait before one is available."""
    return take_counted(session, key, limit, window, now)[0]


def take_counted(
    session: Session, key: str, limit: int, window: float, now: datetime
) -> tuple[float, float]:
    """``take``, and the tokens the bucket holds after it."""
    burst, rate = shape(limit, window)
    budget = _locked_budget(session, key, burst, now)
    if budget.blocked_until and budget.blocked_until > now:
        return (budget.blocked_until - now).total_seconds(), 0.0
    elapsed = max(0.0, (now - budget.updated_at).total_seconds())
    tokens = min(burst, budget.tokens + elapsed * rate)
    budget.updated_at = now
    if tokens >= 1.0 - 1e-9:  # float refill must not leave a caller waiting for 1e-12 s
        budget.tokens = max(0.0, tokens - 1.0)
        return 0.0, budget.tokens
    budget.tokens = tokens
    return (1.0 - tokens) / rate, tokens


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


class Budget(Protocol):
    """``worker.sinks.base.Budget``: what a platform client or a sink is given."""

    def take(self, key: str, limit: int, window: float) -> None: ...

    def observe(self, key: str, limit: int, headers: Mapping[str, str]) -> None: ...


class _Tightening:
    """What our own last take left per key, so that headers that say no less are not written."""

    def __init__(self) -> None:
        self._left: dict[str, float] = {}

    def took(self, key: str, tokens: float) -> None:
        self._left[key] = tokens

    def tightens(self, key: str, headers: Mapping[str, str]) -> bool:
        if "retry-after" in headers:
            return True
        remaining = _number(headers.get("x-ratelimit-remaining"))
        if remaining is None:
            return False
        return remaining <= 0 or remaining < self._left.get(key, float("inf"))


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class DatabaseBudget:
    """``Budget`` over the ``rate_budgets`` table: shared by every worker (the embedded set-up)."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
        self._transaction = sessions
        self._seen = _Tightening()

    def take(self, key: str, limit: int, window: float) -> None:
        while True:
            with self._transaction() as session:
                wait, left = take_counted(session, key, limit, window, utcnow())
            if wait <= 0:
                self._seen.took(key, left)
                return
            wait_or_reschedule(wait, key)

    def observe(self, key: str, limit: int, headers: Mapping[str, str]) -> None:
        lowered = _lowered(headers)
        if not self._seen.tightens(key, lowered):
            return
        with self._transaction() as session:
            observe(session, key, limit, lowered, utcnow())


# The bucket of ``take``, in Redis. KEYS[1]: the bucket; ARGV: burst, refill per
# second, TTL in ms, "now" in seconds ("" for the server's clock, shared by all),
# then optionally the tokens wanted (a block), the tokens that must stay in the bucket
# for a block to be granted, and unused tokens given back. A block is granted whole or
# not at all: below the margin a take gets one token, as without a block.
_TAKE = """
local now = tonumber(ARGV[4])
if not now then local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local want, margin = tonumber(ARGV[5]) or 1, tonumber(ARGV[6]) or 0
local returned = tonumber(ARGV[7]) or 0
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'blocked')
local blocked = tonumber(b[3]) or 0
if blocked > now then return {tostring(blocked - now), '0', '0'} end
local tokens = tonumber(b[1]) or burst
local elapsed = math.max(0, now - (tonumber(b[2]) or now))
tokens = math.min(burst, tokens + elapsed * rate + returned)
local wait, granted = 0, 0
if tokens >= 1 - 1e-9 then
  granted = 1
  if want > 1 and tokens - want >= margin then granted = want end
  tokens = math.max(0, tokens - granted)
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {tostring(wait), tostring(tokens), tostring(granted)}
"""

# Headers folded in, as ``observe`` does. ARGV: burst, TTL in ms, now ("" as above),
# what remains ("" if not said), seconds to block (0 for none).
_OBSERVE = """
local now = tonumber(ARGV[3])
if not now then local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end
local remaining, block, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[2])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens')) or tonumber(ARGV[1])
if remaining then tokens = math.min(tokens, remaining) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens))
if block > 0 then
  redis.call('HSET', KEYS[1], 'blocked', tostring(now + block))
  ttl = ttl + math.ceil(block * 1000)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
REDIS_PREFIX = "relay:quota:"


class RedisBudget:
    """``Budget`` in Redis: one atomic script per take, shared by every worker.

    A block (a 429, Salla's 403, nothing remaining) is written to the database's
    row as well, given ``sessions``: the scheduler finds blocked stores there.

    The key expires a window after its last use: by then the bucket would have
    refilled to a full burst anyway, which is what a missing key means.

    **Tokens in blocks.** While a bucket holds more than half its burst, a process
    takes ``BLOCK`` tokens in one script and hands them to its next takes of that
    key (a chunk's refreshes are one store's, two pages each: one script instead of
    eight). Held tokens are taken from the shared bucket, so every process sees them
    spent: the budget is never overrun, only spent a little early. They are good for
    ``HELD_SECONDS``; what is left then goes back into the bucket with the process's
    next take of that key (a store that goes quiet keeps at most ``BLOCK - 1``
    tokens out until its bucket refills). Below half the burst, as a quota-bound
    store is, each take is one token, so no process holds what another could use.
    A header that tightens the budget drops what the process holds.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = "",
        sessions: Callable[[], AbstractContextManager[Session]] | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._prefix = f"{REDIS_PREFIX}{namespace}:"
        self._take = client.register_script(_TAKE)
        self._observe = client.register_script(_OBSERVE)
        self._seen = _Tightening()
        self._held: dict[str, tuple[int, float]] = {}  # key: (tokens, good until, monotonic)
        self._held_lock = threading.Lock()
        self._taking = threading.Lock()

    def take(self, key: str, limit: int, window: float) -> None:
        burst, rate = shape(limit, window)
        while True:
            # One take at a time goes to Redis from a process: the threads of a chunk,
            # which start their fetches together, then share the block the first took.
            with self._taking:
                returned = self._from_held(key)
                if returned is None:
                    return
                args = [burst, rate, _ttl_ms(window), "", BLOCK, burst / 2, returned]
                wait, left, granted = self._run(self._take, key, args)
                self._seen.took(key, float(left))
                if float(wait) <= 0:
                    if int(granted) > 1:
                        with self._held_lock:
                            self._held[key] = (int(granted) - 1, time.monotonic() + HELD_SECONDS)
                    return
            wait_or_reschedule(float(wait), key)  # outside the lock: others may go on

    def _from_held(self, key: str) -> int | None:
        """``None`` when a held token was taken; else the stale tokens to give back."""
        with self._held_lock:
            tokens, until = self._held.pop(key, (0, 0.0))
            if tokens <= 0:
                return 0
            if until <= time.monotonic():
                return tokens
            if tokens > 1:
                self._held[key] = (tokens - 1, until)
            return None

    def held(self, key: str) -> int:
        """The tokens of ``key`` this process holds, still good."""
        with self._held_lock:
            tokens, until = self._held.get(key, (0, 0.0))
        return tokens if until > time.monotonic() else 0

    def take_at(self, key: str, limit: int, window: float, now: datetime | None = None) -> float:
        """One token, none held; ``now`` is the server's clock unless given (tests)."""
        burst, rate = shape(limit, window)
        args = [burst, rate, _ttl_ms(window), _seconds(now)]
        wait, left, _ = self._run(self._take, key, args)
        self._seen.took(key, float(left))
        return float(wait)

    def observe(self, key: str, limit: int, headers: Mapping[str, str]) -> None:
        lowered = _lowered(headers)
        if self._seen.tightens(key, lowered):
            with self._held_lock:
                self._held.pop(key, None)  # the platform says less is left than we thought
            self.observe_at(key, limit, lowered)

    def observe_at(
        self, key: str, limit: int, headers: Mapping[str, str], now: datetime | None = None
    ) -> None:
        moment = now or utcnow()
        remaining = _number(headers.get("x-ratelimit-remaining"))
        retry_after = parse_retry_after(headers.get("retry-after"), moment)
        reset = _number(headers.get("x-ratelimit-reset"))
        block = min(_block_seconds(remaining, retry_after, reset, moment), MAX_BLOCK)
        said = "" if remaining is None else remaining
        args = [shape(limit, 1.0)[0], _ttl_ms(MAX_BLOCK), _seconds(now), said, block]
        self._run(self._observe, key, args)
        if block > 0 and self._sessions is not None:
            # Blocks are rare: kept in the database too, where the scheduler looks
            # for blocked stores (``worker.pipeline.schedule``) in one query.
            with self._sessions() as session:
                observe(session, key, limit, headers, moment)

    def tokens_now(self, key: str, limit: int, window: float) -> float:
        """The tokens a take would find now, without taking one (0 while blocked)."""
        return self.tokens_now_many([(key, limit, window)])[0]

    def tokens_now_many(self, buckets: Sequence[Bucket]) -> list[float]:
        """``tokens_now`` of each bucket, all in one round trip with the server's clock."""
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, _, _ in buckets:
                pipe.hmget(self.redis_key(key), ["tokens", "updated", "blocked"])
            pipe.time()
            *fields, (seconds, micros) = pipe.execute()
        except redis.RedisError as exc:
            raise TransientError(f"rate budget unavailable (Redis: {type(exc).__name__})") from exc
        now = float(seconds) + float(micros) / 1e6
        return [
            _tokens_then(limit, window, tokens, updated, blocked, now)
            for (_, limit, window), (tokens, updated, blocked) in zip(buckets, fields, strict=True)
        ]

    def redis_key(self, key: str) -> str:
        return self._prefix + key

    def _run(self, script: Any, key: str, args: list[Any]) -> Any:
        try:
            return script(keys=[self.redis_key(key)], args=args)
        except redis.RedisError as exc:
            raise TransientError(f"rate budget unavailable (Redis: {type(exc).__name__})") from exc


def _ttl_ms(window: float) -> int:
    return int(window * 1000) + 1000


def _seconds(now: datetime | None) -> str:
    return "" if now is None else repr(now.astimezone(UTC).timestamp())


_clients: dict[tuple[int, str], redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client(url: str) -> redis.Redis:
    """One pooled client per process and URL (a forked worker makes its own)."""
    with _clients_lock:
        key = (os.getpid(), url)
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=5
            )
        return client


def uses_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://", "unix://"))


def budget_for(
    broker_url: str, database_url: str, sessions: Callable[[], AbstractContextManager[Session]]
) -> Budget:
    """Redis when Redis is the broker (every worker reaches it), else the database.

    Budgets are keyed by store id, which only the database gives meaning to: the
    Redis keys carry a digest of the database's URL, so two installations sharing
    a Redis never share a budget."""
    if uses_redis(broker_url):
        namespace = hashlib.sha256(database_url.encode()).hexdigest()[:12]
        return RedisBudget(redis_client(broker_url), namespace, sessions)
    return DatabaseBudget(sessions)


def headroom(session: Session, buckets: Sequence[Bucket], now: datetime) -> list[float]:
    """Tokens ``take`` would find now in each bucket's row, without taking one (0 while
    blocked), the rows read by one SELECT.

    Read without a lock: the dispatcher sizes what it hands a store by it, and a
    stale read only means a job meets ``take``'s own answer. No row: a full burst.
    """
    keys = sorted({key for key, _, _ in buckets})
    columns = (RateBudget.key, RateBudget.tokens, RateBudget.updated_at, RateBudget.blocked_until)
    found = session.execute(select(*columns).where(RateBudget.key.in_(keys)))
    rows = {row.key: row for row in detached_rows(RateBudget, found)}  # no session objects
    return [_row_tokens(rows.get(key), limit, window, now) for key, limit, window in buckets]


def _row_tokens(row: RateBudget | None, limit: int, window: float, now: datetime) -> float:
    burst, rate = shape(limit, window)
    if row is None:
        return burst
    if row.blocked_until and row.blocked_until > now:
        return 0.0
    elapsed = max(0.0, (now - row.updated_at).total_seconds())
    return min(burst, row.tokens + elapsed * rate)


def _tokens_then(
    limit: int, window: float, tokens: Any, updated: Any, blocked: Any, now: float
) -> float:
    """A Redis bucket's tokens at ``now`` (its clock's seconds) from its fields: none
    (a full burst), a block still running (no tokens), or a count and when it was."""
    burst, rate = shape(limit, window)
    if blocked is not None and float(blocked) > now:
        return 0.0
    if tokens is None:
        return burst
    elapsed = max(0.0, now - float(updated or now))
    return min(burst, float(tokens) + elapsed * rate)


def tokens_now_many(
    budget: Budget, session: Session, buckets: Sequence[Bucket], now: datetime
) -> list[float]:
    """The tokens each (key, limit, window) has now, wherever it lives (``headroom``
    for the database's rows; Redis holds its own count when it is the broker), in one
    round trip: a dispatch reads every store's budget at once."""
    if not buckets:
        return []
    if isinstance(budget, RedisBudget):
        return budget.tokens_now_many(buckets)
    return headroom(session, buckets, now)
