"""The scheduler's decisions: expiry reminders, expiry announcements and
reconciliation. Run from beat (``beat_schedule``) as ``relay.expiry_notices``
and ``relay.reconcile``.

No platform sends an event when points expire, and webhooks get lost, so:

- a customer whose next expiry is within ``RELAY_REMINDER_DAYS`` gets one
  ``points.expiring_soon`` change per expiry date, created during the store's
  local ``RELAY_REMINDER_HOUR`` (so messages arrive at a decent hour);
- once that date has passed, one ``points.expired`` change, and a refresh (the
  balance the platform reports afterwards is the truth);
- customers not refreshed for ``RELAY_RECONCILE_AFTER_HOURS`` are refreshed,
  as many as a share of the store's own API budget allows.

"At most once" is a conditional update on the customer's row
(``reminded_for`` / ``expired_for`` = the expiry in question), so several beat
runs in the hour, or two beats by mistake, never remind twice.

At a million customers the work comes in batches of ``BATCH`` customers, each
its own transaction: a crash or a time limit loses at most the batch in hand
(the next run picks it up again, the markers make that idempotent), and no
transaction grows with the number of customers due. A batch is a handful of
set-based statements: one scan (served by a partial index of the expiries not
yet reminded about / announced), one claiming UPDATE … RETURNING, one INSERT of
all its changes, one SELECT of the sinks of its stores and one INSERT of the
deliveries.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from worker import dispatch
from worker.config import Settings
from worker.pipeline import outbox, refresh
from worker.pipeline.snapshots import snapshot_of
from worker.points import EXPIRED, EXPIRING_SOON, change_payload
from worker.runtime import Runtime
from worker.storage.models import (
    CustomerPoints,
    PointsChange,
    RateBudget,
    RefreshJob,
    Sink,
    Store,
    utcnow,
)
from worker.storage.upsert import insert_ignore_many
from worker.stores import ACTIVE

BATCH = 500  # customers per transaction
MAX_BATCHES = 400  # per run and kind: 200,000 customers; the next run continues
# API calls one refresh costs, for sizing reconciliation (a points call and a
# history page or two; see worker.platforms.*.client).
CALLS_PER_REFRESH = 2
# Seconds between beat runs of relay.reconcile: short, so that each run's share is
# small (a store's refreshes spread over the hour, a bounded number of messages).
RECONCILE_INTERVAL = dispatch.RECONCILE_INTERVAL


@dataclass
class Notices:
    deliveries: list[outbox.Due] = field(default_factory=list)
    refreshes: list[refresh.Due] = field(default_factory=list)

    def __iadd__(self, other: Notices) -> Notices:
        self.deliveries += other.deliveries
        self.refreshes += other.refreshes
        return self


def expiry_notices(runtime: Runtime, now: datetime) -> Notices:
    """Reminders and expiry announcements due now, for every active store."""
    notices = Notices()
    for batch in expiry_batches(runtime, now):
        notices += batch
    return notices


def expiry_batches(runtime: Runtime, now: datetime) -> Generator[Notices]:
    """The same, one committed batch at a time: the caller enqueues each batch's
    messages before the next begins, so a time limit strands nothing committed."""
    stores = _active_stores(runtime)
    hour = runtime.settings.reminder_hour
    reminding = {sid: s for sid, s in stores.items() if _local_hour(now, s.timezone) == hour}
    if reminding:
        horizon = now + timedelta(days=runtime.settings.reminder_days)
        window = CustomerPoints.next_expiry_at.between(now, horizon)
        yield from _batches(runtime, reminding, window, "reminded_for", EXPIRING_SOON)
    if stores:
        expired = CustomerPoints.next_expiry_at <= now
        yield from _batches(runtime, stores, expired, "expired_for", EXPIRED)


def reconcile(runtime: Runtime, now: datetime) -> list[refresh.Due]:
    """Refresh customers we have not looked at for a while (lost webhooks).

    Each store gets as many as ``RELAY_RECONCILE_SHARE`` of its API budget until
    the next run allows, less what its pending refresh jobs will already take,
    and none while the platform has blocked it: reconciliation only ever spends
    spare budget, so it never slows a store's own webhooks. One transaction per
    store, its least recently fetched customers first (``ix_points_store_fetched``).
    """
    cutoff = now - timedelta(hours=runtime.settings.reconcile_after_hours)
    stores = _active_stores(runtime)
    with runtime.sessions() as session:
        queued = _queued_jobs(session)
        blocked = _blocked_stores(session, now)
    due: list[refresh.Due] = []
    for store in stores.values():
        allowance = reconcile_allowance(runtime.settings, store.platform, queued.get(store.id, 0))
        if allowance <= 0 or store.id in blocked:
            continue
        with runtime.transaction() as session:
            query = (
                select(CustomerPoints.customer_id)
                .where(CustomerPoints.store_id == store.id, CustomerPoints.fetched_at < cutoff)
                .order_by(CustomerPoints.fetched_at)
                .limit(allowance)
            )
            due += _request_many(runtime.settings, session, store.id, list(session.scalars(query)))
    return due


def _request_many(
    settings: Settings, session: Session, store_id: int, customer_ids: list[str]
) -> list[refresh.Due]:
    """``refresh.request`` for many customers of a store in one INSERT … ON CONFLICT
    DO NOTHING: a customer with a pending job already is coalesced into it."""
    slot, delay = refresh.reconcile_slot(settings)
    now = utcnow()
    rows = [
        {"store_id": store_id, "customer_id": customer_id, "slot": slot,
         "due_at": now + timedelta(seconds=delay), "status": refresh.PENDING, "created_at": now}
        for customer_id in customer_ids
    ]  # fmt: skip
    due: list[refresh.Due] = []
    for start in range(0, len(rows), BATCH):  # SQLite's bound-parameter limit
        ids = insert_ignore_many(session, RefreshJob, rows[start : start + BATCH])
        due += [refresh.Due(job_id, delay) for job_id in ids]
    return due


def reconcile_allowance(settings: Settings, platform: str, queued: int) -> int:
    """Refreshes a store may spend on reconciliation this run (see ``reconcile``)."""
    limit, window = _quota(settings, platform)
    calls = limit * RECONCILE_INTERVAL / window * settings.reconcile_share
    return max(0, math.floor(calls / CALLS_PER_REFRESH) - queued)


def _quota(settings: Settings, platform: str) -> tuple[int, float]:
    quotas = {"salla": settings.salla_quota, "zid": settings.zid_quota}
    return quotas.get(platform, settings.appstle_quota)  # Shopify stores: Appstle's API


def _queued_jobs(session: Session) -> dict[int, int]:
    """Pending refresh jobs per store (``ix_refresh_status_due``)."""
    waiting = (refresh.PENDING, refresh.RETRYING)
    query = (
        select(RefreshJob.store_id, func.count())
        .where(RefreshJob.status.in_(waiting))
        .group_by(RefreshJob.store_id)
    )
    return {store_id: count for store_id, count in session.execute(query).all()}


def _blocked_stores(session: Session, now: datetime) -> set[int]:
    """Stores whose platform said to stop (a 429 or an exhausted ``X-RateLimit-Remaining``)."""
    keys = session.scalars(select(RateBudget.key).where(RateBudget.blocked_until > now))
    return {int(key.split(":")[1]) for key in keys if key.startswith("store:")}


def _active_stores(runtime: Runtime) -> dict[int, Store]:
    with runtime.sessions() as session:
        return {s.id: s for s in session.scalars(select(Store).where(Store.status == ACTIVE))}


def _local_hour(now: datetime, timezone: str) -> int:
    return now.astimezone(ZoneInfo(timezone)).hour


def _batches(
    runtime: Runtime, stores: dict[int, Store], when: ColumnElement[bool], marker: str, kind: str
) -> Iterator[Notices]:
    """Claimed rows leave the scan (their marker now matches), so each batch
    takes the next ``BATCH``; a short batch means nothing is left."""
    for _ in range(MAX_BATCHES):
        with runtime.transaction() as session:
            rows = _candidates(session, list(stores), when, marker)
            notices = _notify(runtime, session, stores, _claim(session, rows, marker), kind)
        if rows:
            yield notices
        if len(rows) < BATCH:
            return


def _pending(marker: str) -> ColumnElement[bool]:
    """Not yet done for this expiry: the predicate of ``ix_points_remind_due`` /
    ``ix_points_expire_due`` (``worker.storage.models``), word for word."""
    done = getattr(CustomerPoints, marker)
    return or_(done.is_(None), done != CustomerPoints.next_expiry_at)


def _candidates(
    session: Session, store_ids: list[int], when: ColumnElement[bool], marker: str
) -> list[CustomerPoints]:
    query = (
        select(CustomerPoints)
        .where(_pending(marker), when, CustomerPoints.next_expiry_points > 0)
        .where(CustomerPoints.store_id.in_(store_ids))
        .order_by(CustomerPoints.next_expiry_at)
        .limit(BATCH)
    )
    return list(session.scalars(query))


def _claim(session: Session, rows: list[CustomerPoints], marker: str) -> list[CustomerPoints]:
    """Set the marker of every row still unmarked, in one UPDATE for the whole batch
    (a batch spans hundreds of stores: an UPDATE per store was two fifths of a
    reminder hour's time, ``bench/scale.py``); return the rows this run claimed, in
    the batch's order (another run may have claimed some meanwhile)."""
    if not rows:
        return []
    by_key = {(row.store_id, row.customer_id): row for row in rows}
    column = getattr(CustomerPoints, marker)
    statement = (
        update(CustomerPoints)
        .where(tuple_(CustomerPoints.store_id, CustomerPoints.customer_id).in_(sorted(by_key)))
        .where(_pending(marker))
        .values({marker: CustomerPoints.next_expiry_at})
        .returning(CustomerPoints.store_id, CustomerPoints.customer_id, column)
        .execution_options(synchronize_session=False)
    )
    claimed = {
        (store_id, customer_id)
        for store_id, customer_id, expiry in session.execute(statement).all()
        # else a refresh moved it just now: that one is new
        if expiry == by_key[store_id, customer_id].next_expiry_at
    }
    return [row for row in rows if (row.store_id, row.customer_id) in claimed]


def _notify(
    runtime: Runtime,
    session: Session,
    stores: dict[int, Store],
    rows: Sequence[CustomerPoints],
    kind: str,
) -> Notices:
    notices = Notices()
    if not rows:
        return notices
    payloads = [_payload(runtime, stores[row.store_id], row, kind) for row in rows]
    change_ids = _insert_changes(session, rows, payloads)
    sinks = _sinks(session, {row.store_id for row in rows})
    for row, change_id, payload in zip(rows, change_ids, payloads, strict=True):
        store = stores[row.store_id]
        notices.deliveries += outbox.create_deliveries(
            session, store, change_id, payload, sinks=sinks.get(store.id, []), flush=False
        )
    session.flush()
    if kind == EXPIRED:  # the balance the platform reports next is the truth
        for row in rows:
            notices.refreshes += refresh.request(
                runtime.settings, session, row.store_id, row.customer_id, False
            )
    return notices


def _payload(runtime: Runtime, store: Store, row: CustomerPoints, kind: str) -> dict[str, Any]:
    snapshot = snapshot_of(runtime, row)
    return change_payload(
        platform=store.platform, store=store.key, customer_id=row.customer_id, kinds=[kind],
        before=snapshot, after=snapshot, timezone=store.timezone,
    )  # fmt: skip


def _insert_changes(
    session: Session, rows: Sequence[CustomerPoints], payloads: list[dict[str, Any]]
) -> list[int]:
    """All of a batch's changes in one INSERT … RETURNING, ids in the rows' order."""
    values = [
        {"store_id": row.store_id, "customer_id": row.customer_id, "kinds": payload["kinds"],
         "before": payload["before"], "after": payload["after"]}
        for row, payload in zip(rows, payloads, strict=True)
    ]  # fmt: skip
    statement = insert(PointsChange).returning(PointsChange.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, values))


def _sinks(session: Session, store_ids: set[int]) -> dict[int, list[Sink]]:
    """The enabled sinks of a batch's stores, in one query (``ix_sinks_store``)."""
    found: dict[int, list[Sink]] = defaultdict(list)
    query = select(Sink).where(Sink.store_id.in_(store_ids), Sink.enabled).order_by(Sink.id)
    for sink in session.scalars(query):
        found[sink.store_id].append(sink)
    return found
