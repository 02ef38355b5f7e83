"""The scheduler's decisions: expiry reminders, expiry announcements and
reconciliation. Run from beat (``beat_schedule``) as ``relay.expiry_reminders``
and ``relay.reconcile``.

No platform sends an event when points expire, and webhooks get lost, so:

- a customer whose next expiry is within ``RELAY_REMINDER_DAYS`` gets one
  ``points.expiring_soon`` change per expiry date, created during the store's
  local ``RELAY_REMINDER_HOUR`` (so messages arrive at a decent hour);
- once that date has passed, one ``points.expired`` change, and a refresh (the
  balance the platform reports afterwards is the truth);
- customers not refreshed for ``RELAY_RECONCILE_AFTER_HOURS`` are refreshed.

"At most once" is a conditional update on the customer's row
(``reminded_for`` / ``expired_for`` = the expiry in question), so several beat
runs in the hour, or two beats by mistake, never remind twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from worker import outbox, refresh
from worker.points import EXPIRED, EXPIRING_SOON, change_payload
from worker.runtime import Runtime
from worker.snapshots import snapshot_of
from worker.storage.models import CustomerPoints, PointsChange, Store
from worker.storage.upsert import rows_changed
from worker.stores import ACTIVE

BATCH = 500


@dataclass
class Notices:
    deliveries: list[outbox.Due] = field(default_factory=list)
    refreshes: list[refresh.Due] = field(default_factory=list)


def expiry_notices(runtime: Runtime, now: datetime) -> Notices:
    """Reminders and expiry announcements due now, for every active store."""
    notices = Notices()
    with runtime.transaction() as session:
        for store in _active_stores(session):
            if _local_hour(now, store.timezone) == runtime.settings.reminder_hour:
                notices.deliveries += _remind(runtime, session, store, now)
            _announce_expired(runtime, session, store, now, notices)
    return notices


def reconcile(runtime: Runtime, now: datetime) -> list[refresh.Due]:
    """Refresh customers we have not looked at for a while (lost webhooks)."""
    cutoff = now - timedelta(hours=runtime.settings.reconcile_after_hours)
    with runtime.transaction() as session:
        query = (
            select(CustomerPoints)
            .join(Store)
            .where(Store.status == ACTIVE, CustomerPoints.fetched_at < cutoff)
            .order_by(CustomerPoints.fetched_at)
        )
        return _request(runtime, session, list(session.scalars(query.limit(BATCH))))


def _request(runtime: Runtime, session: Session, rows: list[CustomerPoints]) -> list[refresh.Due]:
    due: list[refresh.Due] = []
    for row in rows:
        due += refresh.request(runtime.settings, session, row.store_id, row.customer_id, False)
    return due


def _active_stores(session: Session) -> list[Store]:
    return list(session.scalars(select(Store).where(Store.status == ACTIVE)))


def _local_hour(now: datetime, timezone: str) -> int:
    return now.astimezone(ZoneInfo(timezone)).hour


def _remind(runtime: Runtime, session: Session, store: Store, now: datetime) -> list[outbox.Due]:
    horizon = now + timedelta(days=runtime.settings.reminder_days)
    window = CustomerPoints.next_expiry_at.between(now, horizon)
    rows = _candidates(session, store, window, "reminded_for")
    return _notify(runtime, session, store, rows, EXPIRING_SOON, "reminded_for")


def _announce_expired(
    runtime: Runtime, session: Session, store: Store, now: datetime, notices: Notices
) -> None:
    """Announce once, then refresh: the balance the platform reports next is the truth."""
    rows = _candidates(session, store, CustomerPoints.next_expiry_at <= now, "expired_for")
    notices.deliveries += _notify(runtime, session, store, rows, EXPIRED, "expired_for")
    notices.refreshes += _request(runtime, session, rows)


def _candidates(
    session: Session, store: Store, when: ColumnElement[bool], marker: str
) -> list[CustomerPoints]:
    done = getattr(CustomerPoints, marker)
    query = select(CustomerPoints).where(
        CustomerPoints.store_id == store.id,
        CustomerPoints.next_expiry_points > 0,
        when,
        or_(done.is_(None), done != CustomerPoints.next_expiry_at),
    )
    return list(session.scalars(query.limit(BATCH)))


def _notify(
    runtime: Runtime,
    session: Session,
    store: Store,
    rows: list[CustomerPoints],
    kind: str,
    marker: str,
) -> list[outbox.Due]:
    due: list[outbox.Due] = []
    for row in rows:
        if _claim(session, row, marker):
            due += _change(runtime, session, store, row, kind)
    return due


def _claim(session: Session, row: CustomerPoints, marker: str) -> bool:
    column = getattr(CustomerPoints, marker)
    return bool(
        rows_changed(
            session,
            update(CustomerPoints)
            .where(
                CustomerPoints.store_id == row.store_id,
                CustomerPoints.customer_id == row.customer_id,
                or_(column.is_(None), column != row.next_expiry_at),
            )
            .values({marker: row.next_expiry_at}),
        )
    )


def _change(
    runtime: Runtime, session: Session, store: Store, row: CustomerPoints, kind: str
) -> list[outbox.Due]:
    snapshot = snapshot_of(runtime, row)
    payload = change_payload(
        platform=store.platform, store=store.key, customer_id=row.customer_id, kinds=[kind],
        before=snapshot, after=snapshot, timezone=store.timezone,
    )  # fmt: skip
    change = PointsChange(
        store_id=store.id, customer_id=row.customer_id, kinds=[kind],
        before=payload["before"], after=payload["after"],
    )  # fmt: skip
    session.add(change)
    session.flush()
    return outbox.create_deliveries(session, store, change.id, payload)
