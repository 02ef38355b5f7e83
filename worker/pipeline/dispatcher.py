"""The dispatcher: due work is claimed from its table by due time, never parked
in the broker as countdown messages.

Refresh jobs (``due_at``) and deliveries (``next_attempt_at``) hold their own
timing. Nothing is published for work due later: beat sends ``relay.dispatch``
every ``RELAY_DISPATCH_INTERVAL_SECONDS`` (1 s), and work that is due at once
rings for one straight away (``worker.dispatch.DispatchBell``). Each run:

1. ends settle re-checks and reconciliations a later fetch already answered
   (``refresh.end_answered``), without spending any budget on them;
2. hands each store with due jobs at most what its API budget has room for
   (``quota.tokens_now_many`` in refreshes, less the jobs handed out and not finished),
   first refreshes first (``refresh.priority``), by arrival among equals; a
   re-check whose customer still has a first refresh coming waits for it (that
   fetch will answer it), one chunk at a time: a store whose last chunk is still
   waiting in the broker gets nothing more until a worker claims it. A hot store's
   backlog stays in its table, so other stores' jobs never queue behind it and no
   worker sleeps on its budget;
3. hands out due deliveries, oldest first;

publishing one message per chunk of ids, all in bounded batches.

Invariant: a row is handed out once per due time, by whichever dispatcher marks
it. The mark is a conditional ``UPDATE … RETURNING`` (``dispatched_at`` set where
it was unset, older than the row's due time, or older than the lease), so of two
dispatchers racing for a row one changes it and the other's RETURNING omits it.
Nothing is lost either: a row whose message went missing (a flushed broker, a
worker killed before claiming) is still waiting in its table, and is handed out
again once its mark is older than the lease (``RELAY_STALE_AFTER_SECONDS``).
A worker still claims with a conditional update, so a late duplicate is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from worker import quota
from worker.config import Settings
from worker.dispatch import DELIVER_MANY, REFRESH_MANY
from worker.pipeline import outbox, refresh
from worker.pipeline.schedule import CALLS_PER_REFRESH
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.runtime import Runtime
from worker.storage import plain
from worker.storage.models import Delivery, RefreshJob, Store
from worker.storage.upsert import execute, one_of

# Refresh jobs one store may have handed out and unfinished at once, however large its
# budget, and of those how many may wait in the broker unclaimed: what another store's
# job can find ahead of it in the refresh queue is at most QUEUED_PER_STORE per store.
STORE_IN_FLIGHT = 10
QUEUED_PER_STORE = 4
# A store gets more only once the chunk it has in the broker is claimed, never a
# top-up beside it: a top-up travels as a chunk of its own, a message, a task and a
# worker slot for one fetch's time carrying fewer jobs. With top-ups, the benchmark's
# 2,000 refreshes went out in 998 chunks (two jobs each, half of each process's fetch
# threads idle); without, in 602, and a store has at most one message waiting.
# Jobs per relay.refresh_many message: one store's, at most as many as may wait queued.
# The task runs them side by side (``worker.tasks._fetchers``), so a chunk holds a
# worker slot for about one fetch, not four, and costs one message and one task.
REFRESH_CHUNK = QUEUED_PER_STORE
DELIVERY_BATCH = 500  # deliveries handed out per run
DISPATCH_LOCK = 0x72656C6179  # the advisory lock one run holds ("relay")
DELIVER_CHUNK = 50  # deliveries per relay.deliver_many message

# Publishes a run's messages, all or none: (task name, the row ids of one message) each.
Publish = Callable[[Sequence[tuple[str, Sequence[int | str]]]], None]


@dataclass
class Handed:
    """What one run handed out; ``more``: a batch was full, run again at once."""

    refreshes: list[list[int]] = field(default_factory=list)  # one store's ids per list
    deliveries: list[str] = field(default_factory=list)
    answered: int = 0  # re-checks ended without a fetch
    more: bool = False

    def __len__(self) -> int:
        return sum(map(len, self.refreshes)) + len(self.deliveries)


@dataclass(frozen=True)
class Backlog:
    """One store's refresh jobs as the dispatcher sees them."""

    store_id: int
    waiting: int  # pending or retrying, due or not
    due: int  # due now and not handed out: held back by the store's budget
    in_flight: int  # handed out or being fetched
    refreshes_per_second: float | None  # the budget's steady pace (None: no quota)

    @property
    def drain_seconds(self) -> float | None:
        """How long the waiting jobs take at the budget's pace (None: unknown)."""
        if not self.refreshes_per_second:
            return None
        return (self.waiting + self.in_flight) / self.refreshes_per_second


def run(
    runtime: Runtime, platforms: Mapping[str, Platform], now: datetime, publish: Publish
) -> Handed:
    """One dispatch: mark due rows and publish them in the same transaction, so a
    broker that refuses the message leaves them unmarked for the next run."""
    lease = now - timedelta(seconds=runtime.settings.stale_after_seconds)
    with runtime.transaction() as session:
        if not _only_dispatcher(session):
            return Handed()  # another run is at it now and sees the same rows
        handed = _refreshes(session, platforms, runtime.budget, now, lease)
        handed.deliveries = _hand_out_deliveries(session, now, lease)
        handed.more = handed.more or len(handed.deliveries) == DELIVERY_BATCH
        _publish(handed, publish)
    return handed


def _only_dispatcher(session: Session) -> bool:
    """One run at a time, so that each store's caps hold across runs (a beat tick and a
    rung dispatch would otherwise both hand a store its share). PostgreSQL: a lock held
    until the transaction ends; SQLite's transactions already run one at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(DISPATCH_LOCK))))


def backlog_by_store(session: Session, settings: Settings, now: datetime) -> dict[int, Backlog]:
    """Store id → its refresh backlog and the budget's pace, for ``stores list`` and metrics.

    One grouped scan of the unfinished jobs (``ix_refresh_status_due``: finished
    rows are never read), so its cost follows the backlog, not the table.
    """
    lease = now - timedelta(seconds=settings.stale_after_seconds)
    rows = session.execute(_counts(now, lease)).all()
    platforms = build_platforms(settings)
    stores = _platforms_of(session, [row[0] for row in rows])
    return {
        store_id: Backlog(
            store_id, waiting, due, queued + working, _pace(platforms.get(stores[store_id]))
        )
        for store_id, waiting, due, queued, working, _ in rows
        if store_id in stores
    }


def _pace(platform: Platform | None) -> float | None:
    """Refreshes per second the slowest of a platform's budgets allows."""
    if platform is None or not platform.quotas:
        return None
    rates = [quota.shape(limit, window)[1] for limit, window in platform.quotas.values()]
    return min(rates) / CALLS_PER_REFRESH


def _undispatched(dispatched_at: Any, due: Any, lease: Any) -> ColumnElement[bool]:
    return or_(dispatched_at.is_(None), dispatched_at < due, dispatched_at < lease)


def _handed(dispatched_at: Any, due: Any, lease: datetime) -> ColumnElement[bool]:
    return and_(dispatched_at.is_not(None), dispatched_at >= due, dispatched_at >= lease)


def _counts(now: datetime, lease: datetime) -> Any:
    """Per store: waiting, due-and-not-handed-out, handed out (queued), being fetched,
    and of the due ones how many are re-checks (``refresh.end_answered`` has work)."""
    job = RefreshJob
    waiting = job.status.in_(refresh.WAITING)
    due = and_(waiting, job.due_at <= now, _undispatched(job.dispatched_at, job.due_at, lease))
    queued = and_(waiting, _handed(job.dispatched_at, job.due_at, lease))
    recheck = and_(waiting, job.due_at <= now, job.slot != refresh.SOON)
    return (
        select(
            job.store_id,
            func.sum(case((waiting, 1), else_=0)),
            func.sum(case((due, 1), else_=0)),
            func.sum(case((queued, 1), else_=0)),
            func.sum(case((job.status == refresh.WORKING, 1), else_=0)),
            func.sum(case((recheck, 1), else_=0)),
        )
        .where(job.status.in_((*refresh.WAITING, refresh.WORKING)))
        .group_by(job.store_id)
    )


def _refreshes(
    session: Session,
    platforms: Mapping[str, Platform],
    budget: quota.Budget,
    now: datetime,
    lease: datetime,
) -> Handed:
    """Every store's share of this run, read and handed out a statement or two for all
    of them (their budgets in one round trip, their jobs chosen and marked in one)."""
    handed = Handed()
    counts = {row[0]: row for row in session.execute(_counts(now, lease)) if row[2]}
    stores = _platforms_of(session, list(counts))
    open_: dict[int, int] = {}  # store id (none of its jobs queued): its jobs being fetched
    for store_id, (_, _, _, queued, working, rechecks) in counts.items():
        if rechecks:  # only a store with due re-checks can have one a fetch answered
            handed.answered += refresh.end_answered(session, store_id, now)
        if not queued and working < STORE_IN_FLIGHT:  # no top-up: see QUEUED_PER_STORE
            open_[store_id] = working
    rooms = _rooms(session, budget, {s: platforms.get(stores.get(s, "")) for s in open_}, now)
    wanted = {}
    for store_id, working in open_.items():
        count = min(min(rooms[store_id], STORE_IN_FLIGHT) - working, QUEUED_PER_STORE)
        if count > 0:
            wanted[store_id] = count
    for ids in _hand_out_jobs(session, wanted, now, lease):
        handed.refreshes += _chunks(ids, REFRESH_CHUNK)
    return handed


def _platforms_of(session: Session, store_ids: list[int]) -> dict[int, str]:
    if not store_ids:
        return {}
    query = select(Store.id, Store.platform).where(Store.id.in_(store_ids))
    return {store_id: platform for store_id, platform in session.execute(query)}


def _rooms(
    session: Session,
    budget: quota.Budget,
    platforms: Mapping[int, Platform | None],
    now: datetime,
) -> dict[int, int]:
    """Store id → the refreshes its tightest budget has tokens for right now, every
    store's buckets read at once (``quota.tokens_now_many``)."""
    buckets = [
        (store_id, (f"store:{store_id}:{bucket}", limit, window))
        for store_id, platform in platforms.items()
        if platform is not None
        for bucket, (limit, window) in platform.quotas.items()
    ]
    tokens = quota.tokens_now_many(budget, session, [bucket for _, bucket in buckets], now)
    rooms = dict.fromkeys(platforms, STORE_IN_FLIGHT)  # a platform without a quota
    least: dict[int, float] = {}
    for (store_id, _), found in zip(buckets, tokens, strict=True):
        least[store_id] = min(least.get(store_id, found), found)
    for store_id, found in least.items():
        rooms[store_id] = math.floor(found / CALLS_PER_REFRESH + 1e-9)
    return rooms


def _hand_out_jobs(
    session: Session, wanted: Mapping[int, int], now: datetime, lease: datetime
) -> list[list[int]]:
    """Up to ``wanted[store]`` of each store's due jobs, chosen and marked, a list per
    store (in ``wanted``'s order) in the order they are to run.

    On PostgreSQL one statement chooses and marks them for every store
    (``_HAND_OUT_JOBS``: each store's choice is a LATERAL subquery of
    ``unnest(stores, counts)``, its rows locked as they are chosen), and the order is
    restored from what it returns; elsewhere the choice and the mark are two
    statements per store. Both are built once: a run sends them every second."""
    if not wanted:
        return []
    params: dict[str, Any] = {"now": now, "lease": lease}
    if session.get_bind().dialect.name == "postgresql":
        arrays = {"stores": list(wanted), "counts": list(wanted.values())}
        rows = execute(session, _HAND_OUT_JOBS, params | arrays).all()
        by_store: dict[int, list[Any]] = {store_id: [] for store_id in wanted}
        for row in rows:
            by_store[row.store_id].append(row)
        ordered = (
            sorted(found, key=lambda r: (r.rank, r.created_at, r.id)) for found in by_store.values()
        )
        return [[row.id for row in found] for found in ordered if found]
    handed = []
    for store_id, count in wanted.items():
        store = params | {"store": store_id}
        ids = list(execute(session, _CHOOSE_JOBS, store | {"count": count}).scalars())
        marked = set(execute(session, _MARK_JOBS, store | {"ids": ids}).scalars()) if ids else set()
        if marked:
            handed.append([job_id for job_id in ids if job_id in marked])
    return handed


def _store_jobs_due(store: Any = None) -> ColumnElement[bool]:
    """The jobs of ``store`` (the ``store`` parameter unless given) due and not handed out."""
    job = RefreshJob
    return and_(
        job.store_id == (bindparam("store") if store is None else store),
        one_of(job.status, refresh.WAITING),
        job.due_at <= bindparam("now"),
        _undispatched(job.dispatched_at, job.due_at, bindparam("lease")),
    )


def _first_refresh_waiting() -> ColumnElement[bool]:
    """The job's customer still has a first refresh to come: a re-check waits for it,
    since that fetch will be later than the re-check's due time and answer it."""
    first = aliased(RefreshJob)
    return exists().where(
        first.store_id == RefreshJob.store_id,
        first.customer_id == RefreshJob.customer_id,
        first.slot == refresh.SOON,
        one_of(first.status, (*refresh.WAITING, refresh.WORKING)),
    )


def _choose(store: Any, count: Any) -> Select[int]:
    """Up to ``count`` of ``store``'s due jobs in the order they are to run, locked:
    first refreshes first, a re-check not before its customer's first refresh."""
    return (
        select(RefreshJob.id)
        .where(_store_jobs_due(store))
        .where(or_(RefreshJob.slot == refresh.SOON, ~_first_refresh_waiting()))
        .order_by(refresh.priority(), RefreshJob.created_at, RefreshJob.id)
        .limit(count)
        .with_for_update(skip_locked=True)
    )


# Chosen first, then marked by id: a locking sub-select inside the UPDATE may be re-run
# by PostgreSQL and see rows this very statement changed (see ``_mark``).
_CHOOSE_JOBS = plain.hot(_choose(None, bindparam("count")))
_WANTED = (
    func.unnest(
        bindparam("stores", type_=postgresql.ARRAY(BigInteger)),
        bindparam("counts", type_=postgresql.ARRAY(Integer)),
    )
    .table_valued("store", "wanted")
    .render_derived(name="wanted")
)
_CHOSEN = _choose(_WANTED.c.store, _WANTED.c.wanted).lateral("chosen")
_HAND_OUT_JOBS = plain.hot(
    update(RefreshJob)
    .where(RefreshJob.id.in_(select(_CHOSEN.c.id).select_from(_WANTED).join(_CHOSEN, true())))
    .values(dispatched_at=bindparam("now"))
    .returning(
        RefreshJob.id, RefreshJob.store_id, refresh.priority().label("rank"), RefreshJob.created_at
    )
    .execution_options(synchronize_session=False)
)
_MARK_JOBS = (
    update(RefreshJob)
    .where(RefreshJob.id.in_(bindparam("ids", expanding=True)), _store_jobs_due())
    .values(dispatched_at=bindparam("now"))
    .returning(RefreshJob.id)
    .execution_options(synchronize_session=False)
)


def hand_out_deliveries_now(
    runtime: Runtime, delivery_ids: Sequence[str], now: datetime, publish: Publish
) -> list[str]:
    """Deliveries their creator just committed as due now, handed out at once rather
    than through a dispatch (one hop less for a webhook sink's update). Marked as
    ``run`` marks them, so of the two only one ever publishes a row."""
    lease = now - timedelta(seconds=runtime.settings.stale_after_seconds)
    with runtime.transaction() as session:
        values = {"dispatched_at": now, "deferred": False}
        due = _due_delivery(now, lease)
        ids = _mark(session, Delivery, Delivery.id, list(delivery_ids), due, values)
        publish([(DELIVER_MANY, chunk) for chunk in _chunks(ids, DELIVER_CHUNK)])
    return ids


def _due_delivery(now: datetime, lease: datetime) -> ColumnElement[bool]:
    row = Delivery
    return and_(
        one_of(row.status, (outbox.PENDING, outbox.RETRYING)),
        row.next_attempt_at <= now,
        _undispatched(row.dispatched_at, row.next_attempt_at, lease),
    )


def _hand_out_deliveries(session: Session, now: datetime, lease: datetime) -> list[str]:
    row = Delivery
    due = _due_delivery(now, lease)
    chosen = (
        select(row.id)
        .where(due)
        .order_by(row.next_attempt_at)
        .limit(DELIVERY_BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(chosen))
    return _mark(session, row, row.id, ids, due, {"dispatched_at": now, "deferred": False})


def _mark(
    session: Session,
    model: Any,
    key: Any,
    ids: list[Any],
    due: ColumnElement[bool],
    values: dict[str, Any],
) -> list[Any]:
    """The rows of ``ids`` (in that order) this run marked, re-checked as it marks them.

    Selected first, then marked by id: a locking sub-select inside the UPDATE may be
    re-run by PostgreSQL and see rows this very statement changed.
    """
    if not ids:
        return []
    marked = set(
        session.scalars(
            update(model)
            .where(key.in_(ids), due)
            .values(**values)
            .returning(key)
            .execution_options(synchronize_session=False)
        )
    )
    return [row_id for row_id in ids if row_id in marked]


def _chunks(ids: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


def _publish(handed: Handed, publish: Publish) -> None:
    refreshes = [(REFRESH_MANY, chunk) for chunk in handed.refreshes]
    deliveries = [(DELIVER_MANY, ids) for ids in _chunks(handed.deliveries, DELIVER_CHUNK)]
    publish(refreshes + deliveries)
