"""Refresh jobs: coalesced requests to re-read one customer's points.

A burst of events for a customer inserts into the same pending row (a partial
unique index on store, customer and slot), so it costs one fetch. Order events
also ask for "settle" re-checks later, because platforms can credit points
some time after the order event; those coalesce the same way.

Within one store's budget, jobs are claimed by ``priority()`` then arrival:
first refreshes (``soon``), then settle re-checks, then reconciliation. A settle
re-check or a reconciliation is ended unfetched (``ALREADY_FETCHED``) when a
fetch of that customer began at or after the job's due time (``answered()``):
that fetch already saw whatever the platform had credited by then, which is
all the re-check was waiting for. ``due_at`` is the right mark: it is the event
time plus the settle delay, and only ever moves later (a retry), never earlier.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    case,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from worker import backoff, customers, http, metrics, quota
from worker.config import Settings
from worker.errors import (
    NeedsReauthorization,
    PermanentError,
    TemporarilyBlocked,
    TransientError,
)
from worker.pipeline import outbox
from worker.pipeline.held import HELD as HELD
from worker.pipeline.held import HELD_ONLY
from worker.pipeline.held import needing_attention as needing_attention  # its old home
from worker.pipeline.snapshots import apply_snapshot
from worker.platforms.base import Platform
from worker.points import PointsSnapshot
from worker.runtime import Runtime
from worker.scrub import scrub_error
from worker.storage import plain
from worker.storage.models import CustomerPoints, RefreshJob, Store, detached, utcnow
from worker.storage.types import UTCDateTime
from worker.storage.upsert import (
    execute,
    insert_ignore,
    insert_ignore_returning,
    one_of,
    rows_changed,
    rows_of,
)
from worker.stores import ACTIVE, StoreContext, stopped_reason

log = logging.getLogger(__name__)

PENDING, WORKING, RETRYING, DONE, FAILED = "pending", "working", "retrying", "done", "failed"
SOON, SETTLE, RECONCILE = "soon", "settle", "reconcile"  # slots: settle1, settle2, …
WAITING = (PENDING, RETRYING)
ALREADY_FETCHED = "already fetched after the event"
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Due:
    job_id: int
    countdown: float


def slots(settings: Settings, settle: bool) -> list[tuple[str, float]]:
    """(slot name, delay) pairs for one request: now-ish, plus the settle re-checks."""
    wanted = [(SOON, settings.debounce_seconds)]
    if settle:
        wanted += [(f"{SETTLE}{i}", delay) for i, delay in enumerate(settings.settle_delays, 1)]
    return wanted


def reconcile_slot(settings: Settings) -> tuple[str, float]:
    """Reconciliation's own slot, so that it is claimed after a store's webhooks' jobs."""
    return RECONCILE, settings.debounce_seconds


def priority() -> ColumnElement[int]:
    """Claim order within a store (lower first); ties go by ``created_at``."""
    return case((RefreshJob.slot == SOON, 0), (RefreshJob.slot.startswith(SETTLE), 1), else_=2)


def answered(slot: str, due_at: datetime, fetched_at: datetime | None) -> bool:
    """A re-check whose question a fetch begun at ``fetched_at`` already answered."""
    return slot != SOON and fetched_at is not None and fetched_at >= due_at


def end_answered(session: Session, store_id: int, now: datetime) -> int:
    """``answered()`` for a store's due re-checks, in one statement (the dispatcher's)."""
    fetched_since = exists().where(
        CustomerPoints.store_id == RefreshJob.store_id,
        CustomerPoints.customer_id == RefreshJob.customer_id,
        CustomerPoints.fetched_at >= RefreshJob.due_at,
    )
    return rows_changed(
        session,
        update(RefreshJob)
        .where(RefreshJob.store_id == store_id, RefreshJob.status.in_(WAITING))
        .where(RefreshJob.due_at <= now, RefreshJob.slot != SOON, fetched_since)
        .values(status=DONE, last_error=ALREADY_FETCHED, finished_at=now)
        .execution_options(synchronize_session=False),
    )


def request(
    settings: Settings, session: Session, store_id: int, customer_id: str, settle: bool
) -> list[Due]:
    """Ask for a refresh; returns only the jobs that are new (coalesced ones are not)."""
    now = utcnow()
    due = []
    for slot, delay in slots(settings, settle):
        values = {
            "store_id": store_id,
            "customer_id": customer_id,
            "slot": slot,
            "due_at": now + timedelta(seconds=delay),
            "status": PENDING,
            "created_at": now,
        }
        job_id = insert_ignore(session, RefreshJob, values)
        if job_id is not None:
            due.append(Due(job_id, delay))
    return due


def request_many(
    settings: Settings, session: Session, asks: list[tuple[int, str, bool]]
) -> list[Due]:
    """``request`` for many (store id, customer id, settle) at once: one INSERT … ON
    CONFLICT DO NOTHING for every job of a drained chunk. Rows go in key order, so
    that two drains inserting overlapping jobs wait on each other in the same order."""
    now, delays, rows = utcnow(), {}, {}
    for store_id, customer_id, settle in asks:
        for slot, delay in slots(settings, settle):
            delays[slot] = delay
            rows[store_id, customer_id, slot] = {
                "store_id": store_id, "customer_id": customer_id, "slot": slot,
                "due_at": now + timedelta(seconds=delay), "status": PENDING, "created_at": now,
            }  # fmt: skip
    ordered = [rows[key] for key in sorted(rows)]
    inserted: Sequence[Any]
    if ordered and session.get_bind().dialect.name == "postgresql":
        params = {name: [row[column] for row in ordered] for name, column in _ARRAYS.items()}
        inserted = execute(session, _INSERT_JOBS, params | {"now": now}).all()
    else:
        inserted = insert_ignore_returning(
            session, RefreshJob, ordered, RefreshJob.id, RefreshJob.slot
        )
    return [Due(row[0], delays[row[1]]) for row in inserted]


@dataclass(frozen=True)
class ClaimedJob:
    """A refresh job as its claim left it (the columns a refresh reads)."""

    id: int
    store_id: int
    customer_id: str
    slot: str
    due_at: datetime
    created_at: datetime
    attempts: int


_JOBS = cast(Table, RefreshJob.__table__)
_STORES = cast(Table, Store.__table__)

# PostgreSQL: a drained chunk's jobs as one INSERT … SELECT FROM unnest(the columns as
# arrays), a statement of one text whatever the chunk's size, compiled once; a list of
# rows took SQLAlchemy's "insertmanyvalues", which builds each batch's VALUES at
# execution. (It is marked for the driver's path, but the drain's session holds the
# inbox rows as objects, so there it goes through the ORM.) Rows go in the arrays'
# order (key order, as above).
_ARRAYS = {"stores": "store_id", "customers": "customer_id", "slots": "slot", "dues": "due_at"}
_NEW_JOBS = (
    func.unnest(
        bindparam("stores", type_=postgresql.ARRAY(BigInteger)),
        bindparam("customers", type_=postgresql.ARRAY(String)),
        bindparam("slots", type_=postgresql.ARRAY(String)),
        bindparam("dues", type_=postgresql.ARRAY(UTCDateTime())),
    )
    .table_valued("store_id", "customer_id", "slot", "due_at")
    .render_derived(name="new_jobs")
)
_INSERT_JOBS = plain.hot(
    postgresql.insert(_JOBS)
    .from_select(
        ["store_id", "customer_id", "slot", "due_at", "status", "attempts", "created_at"],
        select(
            _NEW_JOBS.c.store_id, _NEW_JOBS.c.customer_id, _NEW_JOBS.c.slot, _NEW_JOBS.c.due_at,
            literal(PENDING), literal(0, Integer), bindparam("now", type_=UTCDateTime()),
        ),
    )
    .on_conflict_do_nothing()
    .returning(_JOBS.c.id, _JOBS.c.slot)
)  # fmt: skip
_STORE_PREFIX = "store__"  # the job has a store_id of its own
_CLAIM = plain.hot(
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job"), one_of(_JOBS.c.status, WAITING))
    .where(_JOBS.c.due_at <= bindparam("latest"))
    .values(status=WORKING, claimed_at=bindparam("at"), attempts=_JOBS.c.attempts + 1)
    .returning(*[_JOBS.c[name] for name in ClaimedJob.__dataclass_fields__])
)
# The claim and the jobs' store in one statement (UPDATE … FROM, PostgreSQL): what a
# refresh reads of its store, as of its claim. A chunk's jobs (one store's, handed out
# together) are claimed at once: ids in an array, one text whatever the chunk's size.
_CLAIM_WITH_STORE = plain.hot(
    update(_JOBS)
    .where(
        _JOBS.c.id == any_(bindparam("jobs", type_=postgresql.ARRAY(BigInteger))),
        one_of(_JOBS.c.status, WAITING),
    )
    .where(_JOBS.c.due_at <= bindparam("latest"), _JOBS.c.store_id == _STORES.c.id)
    .values(status=WORKING, claimed_at=bindparam("at"), attempts=_JOBS.c.attempts + 1)
    .returning(
        *[_JOBS.c[name] for name in ClaimedJob.__dataclass_fields__],
        *[column.label(_STORE_PREFIX + column.name) for column in _STORES.c],
    )
)
_STORE = plain.hot(select(_STORES).where(_STORES.c.id == bindparam("store")))
_FETCHED_AT = plain.hot(
    select(CustomerPoints.fetched_at).where(
        CustomerPoints.store_id == bindparam("store"),
        CustomerPoints.customer_id == bindparam("customer"),
    )
)


def _claim_params(job_id: int) -> dict[str, object]:
    return {"job": job_id} | _claim_times()


def _claim_times() -> dict[str, object]:
    """A claim's ``latest`` due time (a second's slack) and its ``at``."""
    now = utcnow()
    return {"latest": now + timedelta(seconds=1), "at": now}


def claim(session: Session, job_id: int) -> ClaimedJob | None:
    """The job, now ours; None when it is not due, taken, or already answered.

    One ``UPDATE … RETURNING`` of plain columns: no ORM object is loaded for it."""
    row = execute(session, _CLAIM, _claim_params(job_id)).one_or_none()
    job = ClaimedJob(**row._mapping) if row is not None else None
    if job is None or job.slot == SOON:
        return job
    points = session.get(CustomerPoints, (job.store_id, job.customer_id))
    if answered(job.slot, job.due_at, points.fetched_at if points else None):
        _set(session, job_id, DONE, ALREADY_FETCHED)
        return None
    return job


def claim_with_store(runtime: Runtime, job_id: int) -> tuple[ClaimedJob, Store] | None:
    """``claim`` and the job's store (an object of no session), in one statement that
    commits by itself (``Runtime.statement``). A crash after it leaves the job
    ``working`` for the sweeper, as a crash after any claim does. A settle re-check or
    reconciliation already answered is ended here, in a statement of its own.

    SQLite's RETURNING names only the table it updates: there the claim and the
    store's read are two statements of one transaction."""
    claimed = claim_chunk(runtime, [job_id])
    return claimed[0] if claimed else None


def claim_chunk(runtime: Runtime, job_ids: Sequence[int]) -> list[tuple[ClaimedJob, Store]]:
    """``claim_with_store`` for a chunk the dispatcher handed out, in the ids' order:
    those not claimed (not due, taken, answered) are left out. On PostgreSQL one
    statement claims them all (``_CLAIM_WITH_STORE``), one round trip and one
    commit instead of one per job; its rows lock in the order PostgreSQL finds them,
    as any set-based claim of the dispatcher's does. Once claimed, a job is ours
    whether or not its refresh starts at once: a time limit or crash part-way leaves
    the rest ``working`` for the sweeper, as after a single claim."""
    if runtime.engine.dialect.name == "sqlite":
        with runtime.transaction() as session:
            claimed = []
            for job_id in job_ids:
                job = claim(session, job_id)
                row = execute(session, _STORE, {"store": job.store_id}).one() if job else None
                if job and row:
                    claimed.append((job, detached(Store, row._mapping)))
        return claimed
    with runtime.statement() as connection:
        rows = plain.execute(
            connection, _CLAIM_WITH_STORE, {"jobs": list(job_ids)} | _claim_times()
        ).all()
        order = {job_id: place for place, job_id in enumerate(job_ids)}
        claimed = []
        for row in sorted(rows, key=lambda r: order[r._mapping["id"]]):
            job, store = _claimed_pair(row._mapping)
            if job.slot == SOON or not _answered_already(connection, job):
                claimed.append((job, store))
        return claimed


def _claimed_pair(found: Any) -> tuple[ClaimedJob, Store]:
    job = ClaimedJob(**{name: found[name] for name in ClaimedJob.__dataclass_fields__})
    store = detached(Store, {c.name: found[_STORE_PREFIX + c.name] for c in _STORES.c})
    return job, store


def _answered_already(connection: Connection, job: ClaimedJob) -> bool:
    """A settle re-check or reconciliation a later fetch answered: ended here, done."""
    key = {"store": job.store_id, "customer": job.customer_id}
    if not answered(job.slot, job.due_at, plain.execute(connection, _FETCHED_AT, key).scalar()):
        return False
    values = {"status": DONE, "last_error": ALREADY_FETCHED, "finished_at": utcnow()}
    connection.execute(update(RefreshJob).where(RefreshJob.id == job.id).values(values))
    return True


def run(runtime: Runtime, platforms: dict[str, Platform], job_id: int) -> list[outbox.Due]:
    """Fetch, compare, record. Returns deliveries to enqueue; raises ``Reschedule``."""
    claimed = claim_with_store(runtime, job_id)
    return [] if claimed is None else run_claimed(runtime, platforms, *claimed)


def run_claimed(
    runtime: Runtime, platforms: dict[str, Platform], job: ClaimedJob, store: Store
) -> list[outbox.Due]:
    """``run`` for a job already claimed (``claim_chunk``)."""
    job_id = job.id
    if store.status != ACTIVE:
        # The gate every platform shares: a paused, uninstalled or refused store makes no call.
        _finish(runtime, job_id, FAILED, stopped_reason(store))
        return []
    platform = platforms[store.platform]
    try:
        snapshot = _fetch(runtime, platform, store, job.customer_id)
    except NeedsReauthorization as exc:
        _finish(runtime, job_id, FAILED, f"store needs re-authorization: {exc}")
        return []
    except PermanentError as exc:
        _finish(runtime, job_id, FAILED, str(exc))
        return []
    except TransientError as exc:
        _retry_later(runtime, job, exc)
        return []
    if snapshot.unknown_statuses:
        _finish(runtime, job_id, HELD, held_note(snapshot))
        return []
    with runtime.transaction() as session:
        # Marked done first: the UPDATE locks the job's row as a locking read would,
        # and commits only with the snapshot and its outbox rows.
        if not _done(session, job, snapshot):
            return []  # the customer was forgotten meanwhile (``worker.privacy``)
        deliveries = apply_snapshot(runtime, session, store, job.customer_id, snapshot)
    if job.slot == SOON:  # settle re-checks wait on purpose: not a webhook's latency
        metrics.refresh_finished(job.created_at)
    return deliveries


def held_note(snapshot: PointsSnapshot) -> str:
    """Kept on a held job: the labels we could not classify, so ops can add them."""
    labels = ", ".join(snapshot.unknown_statuses)
    return f"unknown points status labels: {labels}; balance not computed, nothing sent"[:500]


def end_for_store(session: Session, store_id: int, reason: str) -> int:
    """End a stopped store's waiting jobs with ``reason`` (no API call will be made)."""
    return rows_changed(
        session,
        update(RefreshJob)
        .where(RefreshJob.store_id == store_id, RefreshJob.status.in_((PENDING, RETRYING)))
        .values(status=FAILED, last_error=reason[:500], finished_at=utcnow()),
    )


class Reschedule(Exception):
    def __init__(self, job_id: int, countdown: float) -> None:
        super().__init__(f"refresh job {job_id} rescheduled in {countdown:.0f}s")
        self.job_id, self.countdown = job_id, countdown


def _fetch(runtime: Runtime, platform: Platform, store: Store, customer_id: str) -> PointsSnapshot:
    ref = customer_id
    if customers.is_pseudonym(customer_id):  # its address is read from the stored contact
        with runtime.sessions() as session:
            ref = customers.platform_ref(runtime, session, store.id, customer_id)
    context = StoreContext(runtime, store, platform.quotas, platform.default_api_base)
    fetched_at = utcnow()
    with http.calls_for(store.key):
        snapshot = platform.fetch_points(context, ref)
    if snapshot.unknown_statuses:
        log.warning(
            "store %s: unknown points status labels %s; the change is held",
            store.key,
            ", ".join(snapshot.unknown_statuses),
        )
    return PointsSnapshot(**{**snapshot.__dict__, "fetched_at": fetched_at})


def _retry_later(runtime: Runtime, job: ClaimedJob, exc: TransientError) -> None:
    """Put the job back with a due time and raise ``Reschedule``, or give up."""
    rate_limited = isinstance(exc, quota.RateLimited) or exc.retry_after is not None
    rate_limited = rate_limited and not isinstance(exc, TemporarilyBlocked)
    attempts = job.attempts - 1 if rate_limited else job.attempts  # a 429 is not a failure
    if attempts >= MAX_ATTEMPTS:
        _finish(runtime, job.id, FAILED, f"gave up after {attempts} attempts: {exc}")
        return
    settings = runtime.settings
    delay = backoff.retry_delay(
        max(attempts, 1), settings.retry_base_seconds, settings.retry_max_seconds, exc.retry_after
    )
    with runtime.transaction() as session:
        session.execute(
            update(RefreshJob)
            .where(RefreshJob.id == job.id)
            .values(
                status=RETRYING,
                attempts=attempts,
                last_error=str(exc)[:500],
                due_at=utcnow() + timedelta(seconds=delay),
            )
        )
    raise Reschedule(job.id, delay) from exc


def _finish(runtime: Runtime, job_id: int, status: str, reason: str | None) -> None:
    with runtime.transaction() as session:
        _set(session, job_id, status, reason)
        if status == FAILED:
            _log_failed(session, job_id, reason)


def _done(session: Session, job: ClaimedJob, snapshot: PointsSnapshot) -> bool:
    """Mark the job done, and the customer's held jobs this fetch answers resolved
    (on PostgreSQL in the same statement, a data-modifying CTE: no round trip of its
    own); False when the job is gone."""
    params = {"job": job.id, "at": utcnow(), "store": job.store_id,
              "customer": job.customer_id, "fetched": snapshot.fetched_at}  # fmt: skip
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    changed = execute(session, _DONE_RESOLVING if on_postgresql else _DONE, params)
    if rows_of(changed) != 1:
        return False
    if not on_postgresql:
        execute(session, _RESOLVE_HELD, params)
    return True


_DONE = plain.hot(
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job"))
    .values(status=DONE, last_error=None, finished_at=bindparam("at"))
)
# A held job (unknown labels: nothing applied) is answered by a fetch of the same
# customer that began after it was held and was applied: the customer no longer
# needs attention, and the row may go with retention like any finished one. Its
# note is kept behind the word that says so.
RESOLVED = "resolved by a later fetch"
_RESOLVE_HELD = plain.hot(
    update(_JOBS)
    .where(_JOBS.c.store_id == bindparam("store"), _JOBS.c.customer_id == bindparam("customer"))
    .where(HELD_ONLY, _JOBS.c.finished_at <= bindparam("fetched"))  # ix_refresh_held_customer
    .values(
        status=DONE, last_error=literal(f"{RESOLVED}; ") + func.coalesce(_JOBS.c.last_error, "")
    )
)
_DONE_RESOLVING = plain.hot(_DONE.add_cte(_RESOLVE_HELD.cte("resolved_held")))


def _set(session: Session, job_id: int, status: str, reason: str | None) -> None:
    values = {"status": status, "last_error": reason, "finished_at": utcnow()}
    session.execute(update(RefreshJob).where(RefreshJob.id == job_id).values(**values))


def _log_failed(session: Session, job_id: int, reason: str | None) -> None:
    """A refresh that failed for good, once, with the ids that lead to its row."""
    of_job = select(Store).join(RefreshJob, RefreshJob.store_id == Store.id)
    store = session.scalars(of_job.where(RefreshJob.id == job_id)).first()
    key = store.key if store else "unknown"
    log.warning("refresh job %s (store %s) failed: %s", job_id, key, scrub_error(reason, 200))
