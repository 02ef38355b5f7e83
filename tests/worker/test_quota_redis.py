"""The per-store budget in Redis (the broker): the same bucket as the database's,
one script per take (or per block of takes while the bucket is more than half full),
shared by every process; headers written only when they tighten."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import redis

from tests.factories import add_salla_store
from worker import quota
from worker.runtime import Runtime
from worker.storage.models import RateBudget, Store, utcnow
from worker.stores import StoreContext

KEY = "store:1:customers"
QUOTAS = {"customers": (500, 600.0)}  # a burst of 50


@pytest.fixture
def budget(redis_url: str) -> quota.RedisBudget:
    """A budget under a namespace of its own: nothing another test left is seen."""
    return quota.RedisBudget(redis.Redis.from_url(redis_url), uuid.uuid4().hex)


def take(budget: quota.RedisBudget, at: datetime, limit: int = 30) -> float:
    return budget.take_at(KEY, limit, 60.0, at)


def test_it_allows_a_burst_then_asks_to_wait(budget: quota.RedisBudget) -> None:
    now = utcnow()
    assert [take(budget, now) for _ in range(3)] == [0.0, 0.0, 0.0]  # a tenth of 30
    assert 2.2 < take(budget, now) <= 2.23  # then one token every 60/27 s


def test_it_refills_over_time(budget: quota.RedisBudget) -> None:
    now = utcnow()
    for _ in range(3):
        take(budget, now)
    assert take(budget, now + timedelta(seconds=2.3)) == 0.0


def test_it_never_allows_more_than_the_limit_in_any_window(budget: quota.RedisBudget) -> None:
    start, allowed, clock = utcnow(), 0, 0.0
    while clock < 60.0:  # callers that retry as soon as they are told
        wait = take(budget, start + timedelta(seconds=clock))
        allowed += wait == 0.0
        clock += max(wait, 0.001)
    assert allowed <= 30


def test_it_obeys_retry_after_from_the_platform(budget: quota.RedisBudget) -> None:
    now = utcnow()
    budget.observe_at(KEY, 30, {"retry-after": "30"}, now)
    assert take(budget, now + timedelta(seconds=1)) > 28


def test_it_blocks_until_reset_when_nothing_remains(budget: quota.RedisBudget) -> None:
    now = utcnow()
    reset = str(int(now.timestamp()) + 45)
    budget.observe_at(KEY, 30, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}, now)
    assert 40 < take(budget, now) <= 45


def test_it_caps_tokens_by_what_the_platform_says_remains(budget: quota.RedisBudget) -> None:
    now = utcnow()
    budget.observe_at(KEY, 30, {"x-ratelimit-remaining": "1"}, now)
    assert take(budget, now) == 0.0
    assert take(budget, now) > 0


def _takes(url: str, namespace: str, attempts: int, allowed: multiprocessing.Queue[int]) -> None:
    budget = quota.RedisBudget(redis.Redis.from_url(url), namespace)
    # 100 per 10 hours: a burst of 10, then one token every 400 s.
    allowed.put(sum(budget.take_at(KEY, 100, 36_000.0) == 0.0 for _ in range(attempts)))


def test_processes_taking_at_once_share_one_burst(redis_url: str) -> None:
    namespace, context = uuid.uuid4().hex, multiprocessing.get_context("fork")
    allowed: multiprocessing.Queue[int] = context.Queue()
    workers = [
        context.Process(target=_takes, args=(redis_url, namespace, 8, allowed)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    counts = [allowed.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(counts) == 10  # 32 attempts, one burst between them
    assert all(worker.exitcode == 0 for worker in workers)


def _stored_tokens(redis_url: str, budget: quota.RedisBudget) -> bytes | None:
    value = redis.Redis.from_url(redis_url).hget(budget.redis_key(KEY), "tokens")
    return value if isinstance(value, bytes) else None


def test_headers_that_leave_more_than_we_have_are_not_written(
    redis_url: str, budget: quota.RedisBudget
) -> None:
    budget.take(KEY, 500, 600.0)  # a block of 8 of a burst of 50: 42 left
    before = _stored_tokens(redis_url, budget)
    budget.observe(KEY, 500, {"X-RateLimit-Remaining": "499", "X-RateLimit-Reset": "600"})
    assert _stored_tokens(redis_url, budget) == before
    budget.observe(KEY, 500, {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "600"})
    assert _stored_tokens(redis_url, budget) == b"3"


def test_the_database_budget_writes_only_headers_that_tighten(runtime: Runtime) -> None:
    budget = quota.DatabaseBudget(runtime.transaction)
    budget.take(KEY, 500, 600.0)
    with runtime.sessions() as session:
        before = session.get_one(RateBudget, KEY).tokens
    budget.observe(KEY, 500, {"X-RateLimit-Remaining": "499"})
    with runtime.sessions() as session:
        assert session.get_one(RateBudget, KEY).tokens == before
    budget.observe(KEY, 500, {"X-RateLimit-Remaining": "3"})
    with runtime.sessions() as session:
        assert session.get_one(RateBudget, KEY).tokens == 3


def test_the_broker_decides_where_budgets_live(runtime: Runtime) -> None:
    settings = runtime.settings
    url = settings.database_url
    assert isinstance(
        quota.budget_for(settings.broker_url, url, runtime.transaction), quota.RedisBudget
    )
    embedded = "sqla+sqlite:///broker.sqlite"
    assert isinstance(quota.budget_for(embedded, url, runtime.transaction), quota.DatabaseBudget)


def test_it_tells_the_tokens_left_without_taking_one(budget: quota.RedisBudget) -> None:
    assert budget.tokens_now(KEY, 30, 60.0) == 3.0  # a full burst: no key yet
    budget.take(KEY, 30, 60.0)
    assert 2.0 <= budget.tokens_now(KEY, 30, 60.0) < 2.1
    budget.observe_at(KEY, 30, {"retry-after": "30"})
    assert budget.tokens_now(KEY, 30, 60.0) == 0.0


def scripts_run(redis_url: str) -> int:
    """Scripts Redis has run (``EVALSHA``), by every client."""
    stats = redis.Redis.from_url(redis_url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_full_bucket_is_taken_in_blocks(redis_url: str, budget: quota.RedisBudget) -> None:
    before = scripts_run(redis_url)
    for _ in range(quota.BLOCK):
        budget.take(KEY, 1000, 600.0)  # a burst of 100
    assert scripts_run(redis_url) - before == 1
    assert 92.0 <= budget.tokens_now(KEY, 1000, 600.0) < 92.1  # spent for every process
    budget.take(KEY, 1000, 600.0)
    assert scripts_run(redis_url) - before == 2
    assert 84.0 <= budget.tokens_now(KEY, 1000, 600.0) < 84.1
    assert budget.held(KEY) == quota.BLOCK - 1


def test_a_bucket_under_half_full_is_taken_a_token_at_a_time(
    redis_url: str, budget: quota.RedisBudget
) -> None:
    """The default Salla quota's burst is 50: a quota-bound store holds no block."""
    budget.observe_at(KEY, 500, {"x-ratelimit-remaining": "24"})
    before = scripts_run(redis_url)
    for _ in range(3):
        budget.take(KEY, 500, 600.0)
    assert scripts_run(redis_url) - before == 3
    assert budget.held(KEY) == 0
    assert 21.0 <= budget.tokens_now(KEY, 500, 600.0) < 21.1


def test_tokens_held_too_long_go_back_with_the_next_take(budget: quota.RedisBudget) -> None:
    """A burst of 100 refilling at 0.025 tokens a second: what comes back is ours."""
    budget.take(KEY, 1000, 36_000.0)
    assert budget.held(KEY) == quota.BLOCK - 1
    time.sleep(quota.HELD_SECONDS + 0.1)
    assert budget.held(KEY) == 0
    budget.take(KEY, 1000, 36_000.0)  # 7 given back, a new block of 8 taken
    assert 91.0 <= budget.tokens_now(KEY, 1000, 36_000.0) < 91.2


def test_a_header_that_tightens_drops_the_held_tokens(budget: quota.RedisBudget) -> None:
    budget.take(KEY, 1000, 600.0)
    budget.observe(KEY, 1000, {"Retry-After": "30"})
    assert budget.held(KEY) == 0
    with pytest.raises(quota.RateLimited):
        budget.take(KEY, 1000, 600.0)


def test_threads_taking_at_once_share_one_block(redis_url: str, budget: quota.RedisBudget) -> None:
    """A chunk's four refreshes start their fetches together: one script serves them."""
    start = threading.Barrier(4)

    def take(_: int) -> None:
        start.wait()
        budget.take(KEY, 1000, 600.0)

    before = scripts_run(redis_url)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(take, range(4)))
    assert scripts_run(redis_url) - before == 1
    assert budget.held(KEY) == quota.BLOCK - 4
    assert 92.0 <= budget.tokens_now(KEY, 1000, 600.0) < 92.1


def test_a_process_keeps_one_budget_for_every_refresh(redis_url: str, runtime: Runtime) -> None:
    """Each refresh makes its own ``StoreContext``; the tokens its take held in a block
    serve the next refresh of the store in that process."""
    store = add_salla_store(runtime)
    with runtime.sessions() as session:
        loaded = session.get_one(Store, store.id)
    first, second = (StoreContext(runtime, loaded, QUOTAS, "http://127.0.0.1:9") for _ in "12")
    assert runtime.budget is runtime.budget
    before = scripts_run(redis_url)
    first.take_quota("customers")
    second.take_quota("customers")
    assert scripts_run(redis_url) - before == 1
