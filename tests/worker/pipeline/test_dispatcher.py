"""The dispatcher: due rows handed out from their tables, by priority within each
store's budget, each row once, whatever the broker lost."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import relay_env
from tests.factories import add_salla_store, add_webhook_sink
from tests.listening import listening
from worker import quota
from worker.cli.app import main
from worker.pipeline import dispatcher, outbox, refresh
from worker.platforms import build_platforms
from worker.runtime import Runtime
from worker.signing import new_secret
from worker.storage.models import CustomerPoints, Delivery, RateBudget, RefreshJob, Store


def now() -> datetime:
    """Read at each use: a time taken at import is minutes old when a long suite gets here."""
    return datetime.now(UTC)


class Published:
    """What a run would have sent: (task name, ids) per message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, chunks: Sequence[tuple[str, Sequence[int | str]]]) -> None:
        with self._lock:
            self.messages += [(name, list(ids)) for name, ids in chunks]

    def ids(self) -> list[Any]:
        return [row_id for _, ids in self.messages for row_id in ids]


def job(
    runtime: Runtime, store: Store, customer: str, slot: str = refresh.SOON, **values: Any
) -> int:
    row = RefreshJob(store_id=store.id, customer_id=customer, slot=slot, status="pending")
    row.due_at = values.pop("due_at", now() - timedelta(seconds=1))
    row.created_at = values.pop("created_at", now() - timedelta(minutes=1))
    with runtime.transaction() as session:
        session.add(row)
        session.flush()
        return row.id


def budget(runtime: Runtime, store: Store, tokens: float, **values: Any) -> None:
    """The store's budget as its backend keeps it: the database's row, and Redis's
    count when Redis is the broker (``worker.quota.budget_for``)."""
    key = f"store:{store.id}:customers"
    with runtime.transaction() as session:
        session.merge(RateBudget(key=key, tokens=tokens, updated_at=datetime.now(UTC), **values))
    settings = runtime.settings
    backend = quota.budget_for(settings.broker_url, settings.database_url, runtime.transaction)
    if isinstance(backend, quota.RedisBudget):
        client = quota.redis_client(settings.broker_url)
        seconds, micros = client.time()
        fields: dict[str, float] = {"tokens": tokens, "updated": seconds + micros / 1e6}
        if values.get("blocked_until"):
            fields["blocked"] = values["blocked_until"].timestamp()
        client.hset(backend.redis_key(key), mapping=fields)


def run(runtime: Runtime, published: Published | None = None) -> dispatcher.Handed:
    platforms = build_platforms(runtime.settings)
    return dispatcher.run(runtime, platforms, datetime.now(UTC), published or Published())


def handed_jobs(runtime: Runtime) -> list[int]:
    """The refresh jobs one run handed out, in the order it published them."""
    return [job_id for chunk in run(runtime).refreshes for job_id in chunk]


def status(runtime: Runtime, job_id: int) -> tuple[str, str | None]:
    with runtime.sessions() as session:
        row = session.get_one(RefreshJob, job_id)
        return row.status, row.last_error


def test_it_hands_out_first_refreshes_before_re_checks_within_the_budget(
    runtime: Runtime,
) -> None:
    store = add_salla_store(runtime)
    minute = timedelta(minutes=1)
    reconcile = job(runtime, store, "r", refresh.RECONCILE, created_at=now() - 9 * minute)
    settle1 = job(runtime, store, "a", "settle1", created_at=now() - 8 * minute)
    late = job(runtime, store, "b", refresh.SOON, created_at=now() - 2 * minute)
    early = job(runtime, store, "c", refresh.SOON, created_at=now() - 3 * minute)
    settle2 = job(runtime, store, "d", "settle2", created_at=now() - 7 * minute)
    job(runtime, store, "e", refresh.SOON, due_at=now() + timedelta(minutes=5))  # not due
    budget(runtime, store, tokens=6)  # three refreshes of two calls
    assert handed_jobs(runtime) == [early, late, settle1]
    assert handed_jobs(runtime) == []  # those three are still in flight
    with runtime.transaction() as session:
        for row in session.scalars(select(RefreshJob).where(RefreshJob.dispatched_at.is_not(None))):
            row.status = refresh.DONE
    budget(runtime, store, tokens=50)
    assert handed_jobs(runtime) == [settle2, reconcile]


def test_it_hands_a_quiet_store_its_job_while_a_hot_store_is_over_budget(
    runtime: Runtime,
) -> None:
    hot, quiet = add_salla_store(runtime, "111"), add_salla_store(runtime, "222")
    for n in range(30):
        job(runtime, hot, f"hot-{n}")
    waiting = job(runtime, quiet, "quiet-1")
    budget(runtime, hot, tokens=0)
    assert handed_jobs(runtime) == [waiting]
    budget(runtime, hot, tokens=40, blocked_until=now() + timedelta(minutes=5))  # a 429
    assert handed_jobs(runtime) == []
    with runtime.sessions() as session:
        backlog = dispatcher.backlog_by_store(session, runtime.settings, now())
    assert backlog[hot.id].due == 30 and backlog[quiet.id].in_flight == 1
    limit, window = runtime.settings.salla_quota
    pace = (limit - limit // 10) / window / 2  # the steady refill, two calls a refresh
    assert backlog[hot.id].drain_seconds == pytest.approx(30 / pace)


def test_it_ends_a_settle_re_check_a_later_fetch_already_answered(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    fetched = now() - timedelta(seconds=10)
    with runtime.transaction() as session:
        for customer in ("fetched-late", "fetched-early"):
            session.add(CustomerPoints(
                store_id=store.id, customer_id=customer, available=Decimal(1), pending=Decimal(0),
                used=Decimal(0), next_expiry_points=Decimal(0), fetched_at=fetched,
            ))  # fmt: skip
    answered = job(
        runtime, store, "fetched-late", "settle1", due_at=fetched - timedelta(seconds=50)
    )
    open_check = job(
        runtime, store, "fetched-early", "settle1", due_at=fetched + timedelta(seconds=5)
    )
    first = job(
        runtime, store, "fetched-late", refresh.SOON, due_at=fetched - timedelta(seconds=50)
    )
    handed = run(runtime)
    assert handed.answered == 1 and handed.refreshes == [[first, open_check]]
    assert status(runtime, answered) == ("done", refresh.ALREADY_FETCHED)
    with runtime.transaction() as session:  # a fetch that lands after the hand-out counts too
        session.get_one(CustomerPoints, (store.id, "fetched-early")).fetched_at = now()
    with runtime.transaction() as session:
        assert refresh.claim(session, open_check) is None
    assert status(runtime, open_check) == ("done", refresh.ALREADY_FETCHED)


def test_it_hands_out_what_a_flushed_broker_lost_once_the_lease_ends(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    later = job(runtime, store, "later", due_at=now() + timedelta(hours=1))
    assert handed_jobs(runtime) == []  # nothing for the broker to hold meanwhile
    with runtime.transaction() as session:
        session.get_one(RefreshJob, later).due_at = datetime.now(UTC)  # the hour has passed
    assert handed_jobs(runtime) == [later]
    assert handed_jobs(runtime) == []  # handed out: not again within the lease
    expired = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, stale_after_seconds=0)
    )
    assert [j for c in run(expired).refreshes for j in c] == [
        later
    ]  # its message never arrived: again


def test_it_hands_out_a_retry_when_its_new_time_comes(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    job_id = job(runtime, store, "c1")
    assert handed_jobs(runtime) == [job_id]
    with runtime.transaction() as session:  # claimed, then told to come back (a 429)
        row = session.get_one(RefreshJob, job_id)
        row.status, row.due_at = refresh.RETRYING, datetime.now(UTC) + timedelta(seconds=1)
    assert handed_jobs(runtime) == []
    with runtime.transaction() as session:
        session.get_one(RefreshJob, job_id).due_at = datetime.now(UTC)
    assert handed_jobs(runtime) == [job_id]


def deliveries(runtime: Runtime, store: Store, count: int, due: datetime) -> list[str]:
    sink = add_webhook_sink(runtime, store, "https://hooks.example/loyalty", new_secret())
    rows = [
        Delivery(id=outbox.new_delivery_id(), sink_id=sink.id, store_id=store.id,
                 event_type="points.balance_changed", payload={"kinds": []},
                 status="pending", next_attempt_at=due)
        for _ in range(count)
    ]  # fmt: skip
    with runtime.transaction() as session:
        session.add_all(rows)
    return [row.id for row in rows]


def test_it_hands_out_due_deliveries_in_chunks_and_later_ones_when_due(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    due = deliveries(runtime, store, 120, now() - timedelta(seconds=1))
    later = deliveries(runtime, store, 3, now() + timedelta(minutes=15))
    published = Published()
    assert sorted(run(runtime, published).deliveries) == sorted(due)
    assert sorted(len(ids) for _, ids in published.messages) == [20, 50, 50]
    assert {name for name, _ in published.messages} == {"relay.deliver_many"}
    with runtime.transaction() as session:
        for row_id in later:
            session.get_one(Delivery, row_id).next_attempt_at = datetime.now(UTC)
    assert sorted(run(runtime).deliveries) == sorted(later)


def test_two_dispatchers_at_once_hand_out_each_row_once(runtime: Runtime) -> None:
    lifted = dataclasses.replace(runtime.settings, salla_quota=(1_000_000, 600.0))
    runtime = dataclasses.replace(runtime, settings=lifted)
    stores = [add_salla_store(runtime, str(900 + n)) for n in range(8)]
    per_store = dispatcher.QUEUED_PER_STORE  # all of them can be handed out at once
    jobs = [job(runtime, store, f"c{n}") for store in stores for n in range(per_store)]
    due = deliveries(runtime, add_salla_store(runtime, "999"), 700, now() - timedelta(seconds=1))
    published, start = Published(), threading.Barrier(4)

    def dispatch_until_empty() -> None:
        start.wait()
        platforms = build_platforms(lifted)
        while len(dispatcher.run(runtime, platforms, datetime.now(UTC), published)):
            pass

    threads = [threading.Thread(target=dispatch_until_empty) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = published.ids()
    assert len(handed) == len(set(handed)) == len(jobs) + len(due)
    assert set(handed) == set(jobs) | set(due)


def test_stores_list_shows_each_stores_backlog_and_drain_time(
    runtime: Runtime, tmp_path: Any, redis_url: str
) -> None:
    hot = add_salla_store(runtime, "111")
    add_salla_store(runtime, "222")
    for n in range(45):
        job(runtime, hot, f"hot-{n}", due_at=now() + timedelta(minutes=1))
    env = relay_env(tmp_path, runtime.settings.database_url, redis_url)
    listing = CliRunner().invoke(main, ["stores", "list"], env=env, catch_exceptions=False)
    lines = {line.split()[0]: line for line in listing.output.splitlines()[1:]}
    assert "BACKLOG" in listing.output and "DRAINS IN" in listing.output
    assert " 45 " in lines["salla:111"] and "2 min" in lines["salla:111"]  # 45 at 22.5/min
    assert " 0 " in lines["salla:222"]


def test_a_re_check_waits_for_its_customers_first_refresh(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    first = job(runtime, store, "c1", refresh.SOON, due_at=now() + timedelta(minutes=5))
    check = job(runtime, store, "c1", "settle1")  # due, but c1's first fetch is still to come
    other = job(runtime, store, "c2", "settle1")
    assert handed_jobs(runtime) == [other]
    with runtime.transaction() as session:
        session.get_one(RefreshJob, first).status = refresh.FAILED  # no fetch is coming now
        session.get_one(RefreshJob, other).status = refresh.WORKING  # a worker claimed it
    assert handed_jobs(runtime) == [check]


def test_a_store_keeps_only_a_few_jobs_waiting_in_the_broker(runtime: Runtime) -> None:
    lifted = dataclasses.replace(runtime.settings, salla_quota=(1_000_000, 600.0))
    runtime = dataclasses.replace(runtime, settings=lifted)
    store = add_salla_store(runtime)
    for n in range(30):
        job(runtime, store, f"c{n}", created_at=now() - timedelta(seconds=60 - n))
    first = handed_jobs(runtime)
    assert len(first) == dispatcher.QUEUED_PER_STORE
    assert handed_jobs(runtime) == []  # none of them claimed yet
    with runtime.transaction() as session:
        for job_id in first:  # a worker took the chunk
            session.get_one(RefreshJob, job_id).status = refresh.WORKING
    assert len(handed_jobs(runtime)) == dispatcher.QUEUED_PER_STORE


def test_a_store_gets_whole_chunks_not_top_ups_beside_one_still_queued(runtime: Runtime) -> None:
    """Jobs handed out beside a chunk still in the broker would travel as a chunk of
    their own: a message and a worker slot for fewer jobs. The store waits for its
    chunk to be claimed, then gets a whole one."""
    lifted = dataclasses.replace(runtime.settings, salla_quota=(1_000_000, 600.0))
    runtime = dataclasses.replace(runtime, settings=lifted)
    store = add_salla_store(runtime)
    ids = [job(runtime, store, f"c{n}", created_at=now() - timedelta(seconds=60 - n))
           for n in range(9)]  # fmt: skip
    with runtime.transaction() as session:  # one job queued, handed out by an earlier run
        session.get_one(RefreshJob, ids[0]).dispatched_at = datetime.now(UTC)
    assert run(runtime).refreshes == []
    with runtime.transaction() as session:
        session.get_one(RefreshJob, ids[0]).status = refresh.WORKING
    chunks = run(runtime).refreshes
    assert [len(chunk) for chunk in chunks] == [dispatcher.REFRESH_CHUNK]
    assert chunks[0] == ids[1 : 1 + dispatcher.REFRESH_CHUNK]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_run_leaves_the_rows_to_the_run_in_progress(runtime: Runtime) -> None:
    job_id = job(runtime, add_salla_store(runtime), "c1")
    url = runtime.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as other:  # another dispatcher is running
        other.execute("SELECT pg_advisory_xact_lock(%s)", (dispatcher.DISPATCH_LOCK,))
        assert handed_jobs(runtime) == []
    assert handed_jobs(runtime) == [job_id]


def test_it_sizes_a_store_by_the_budget_redis_keeps_when_redis_is_the_broker(
    runtime: Runtime,
) -> None:
    """Workers take tokens from Redis (``worker.quota.RedisBudget``) and leave the
    database's row alone: the dispatcher must read the same count they spend."""
    store = add_salla_store(runtime)
    job(runtime, store, "a", refresh.SOON, created_at=now() - timedelta(minutes=1))
    settings = runtime.settings
    backend = quota.budget_for(settings.broker_url, settings.database_url, runtime.transaction)
    assert isinstance(backend, quota.RedisBudget)
    client = quota.redis_client(settings.broker_url)
    seconds, micros = client.time()
    spent = {"tokens": 0.0, "updated": seconds + micros / 1e6}
    client.hset(backend.redis_key(f"store:{store.id}:customers"), mapping=spent)
    assert handed_jobs(runtime) == []  # no row in rate_budgets: only Redis knows it is spent


def test_a_run_reads_and_hands_out_every_stores_share_at_once(runtime: Runtime) -> None:
    """Each store gets its own share (its budget, its caps, its order), and a run's
    cost does not grow with the stores: on PostgreSQL one statement chooses and marks
    every store's jobs, and every store's budget is read in one round trip to Redis."""
    lifted = dataclasses.replace(runtime.settings, salla_quota=(1_000_000, 600.0))
    runtime = dataclasses.replace(runtime, settings=lifted)

    def stores_with_jobs(first: int, count: int) -> dict[int, list[int]]:
        jobs = {}
        for n in range(first, first + count):
            store = add_salla_store(runtime, str(900 + n))
            ids = [job(runtime, store, f"s{n}-c{k}", created_at=now() - timedelta(seconds=90 - k))
                   for k in range(6)]  # fmt: skip
            jobs[store.id] = ids
        return jobs

    def one_run() -> tuple[list[list[int]], list[str]]:
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(args[2])

        with listening(runtime.engine, before_cursor_execute=seen):
            handed = run(runtime).refreshes
        return handed, statements

    client = quota.redis_client(runtime.settings.broker_url)

    def clock_reads() -> int:
        return int(client.info("commandstats").get("cmdstat_time", {}).get("calls", 0))

    few = stores_with_jobs(0, 2)
    handed, few_statements = one_run()
    assert sorted(map(tuple, handed)) == sorted(tuple(ids[:4]) for ids in few.values())
    with runtime.transaction() as session:  # done: those stores hand out their last two
        for row in session.scalars(select(RefreshJob).where(RefreshJob.dispatched_at.is_not(None))):
            row.status = refresh.DONE
    many = stores_with_jobs(2, 6)
    before = clock_reads()
    handed, many_statements = one_run()
    assert clock_reads() - before == 1  # every store's budget, with Redis's clock, at once
    expected = [ids[4:] for ids in few.values()] + [ids[:4] for ids in many.values()]
    assert sorted(map(tuple, handed)) == sorted(map(tuple, expected))
    if runtime.engine.dialect.name == "postgresql":
        assert len(many_statements) == len(few_statements)
        assert sum(s.startswith("UPDATE refresh_jobs") for s in many_statements) == 1
    else:  # a choice and a mark per store
        assert len(many_statements) - len(few_statements) == 2 * (8 - 2)
