"""Stores as ops sees them: status and reason, API budget left, last webhook,
customers held on unknown points labels.

Stores are few (one row per merchant), so a page of them is read in one query
ordered by id; what is gathered per store is bounded by an index on a page's
ids: the last inbox row per store (``ix_inbox_store_status_received``: the
newest row of each status is one index probe), the store's
rate-budget rows (primary-key prefix), and held refresh jobs (few by nature).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from worker import quota
from worker.ops.inbox import STATUSES as INBOX_STATUSES
from worker.ops.inbox import receivers
from worker.pipeline import refresh
from worker.storage.models import InboxEvent, RateBudget, Store, utcnow

NEEDS_ATTENTION = ("needs_reauth", "paused")


@dataclass(frozen=True)
class Budget:
    """One API family's bucket for a store: share of the burst used now, and a block."""

    bucket: str
    used: float  # 0..1 of the burst
    blocked_until: datetime | None


@dataclass(frozen=True)
class StoreSummary:
    id: int
    key: str
    name: str | None
    platform: str
    status: str
    reason: str | None
    needs_reauth: bool
    last_webhook_at: datetime | None
    budgets: tuple[Budget, ...]
    held_customers: int

    @property
    def needs_attention(self) -> bool:
        return self.status in NEEDS_ATTENTION or self.held_customers > 0


def summaries(
    session: Session,
    quotas: Mapping[str, Mapping[str, tuple[int, float]]],
    *,
    after_id: int = 0,
    limit: int = 50,
) -> list[StoreSummary]:
    """A page of stores after ``after_id`` (``quotas``: platform → bucket → limit, window)."""
    query = select(Store).where(Store.id > after_id).order_by(Store.id).limit(limit)
    stores = list(session.scalars(query))
    held = refresh.needing_attention(session)
    last = _last_webhooks(session, stores)
    budgets = _budgets(session, stores, quotas)
    return [_summary(store, last, budgets, held) for store in stores]


def needing_attention(session: Session, limit: int = 20) -> list[StoreSummary]:
    """Stores that are paused or need re-authorization, or hold customers: the overview's list."""
    held = refresh.needing_attention(session)
    query = select(Store).where(Store.status.in_(NEEDS_ATTENTION) | Store.id.in_(list(held)))
    stores = list(session.scalars(query.order_by(Store.id).limit(limit)))
    last = _last_webhooks(session, stores)
    return [_summary(store, last, {}, held) for store in stores]


def _summary(
    store: Store,
    last: Mapping[str, datetime],
    budgets: Mapping[int, tuple[Budget, ...]],
    held: Mapping[int, int],
) -> StoreSummary:
    return StoreSummary(
        id=store.id,
        key=store.key,
        name=store.name,
        platform=store.platform,
        status=store.status,
        reason=store.status_reason,
        needs_reauth=store.status == "needs_reauth",
        last_webhook_at=last.get(store.key),
        budgets=budgets.get(store.id, ()),
        held_customers=held.get(store.id, 0),
    )


def _last_webhooks(session: Session, stores: list[Store]) -> dict[str, datetime]:
    """Newest ``received_at`` per store (by key): the newest of each status, one probe each."""
    found: dict[str, datetime] = {}
    for store in stores:
        platforms = receivers(store.platform)
        newest = [
            select(InboxEvent.received_at.label("at"))
            .where(InboxEvent.store_ref == store.external_id, InboxEvent.status == status)
            .where(InboxEvent.platform.in_(platforms))
            .order_by(InboxEvent.received_at.desc())
            .limit(1)
            .subquery()
            for status in INBOX_STATUSES
        ]
        merged = union_all(*(select(part.c.at) for part in newest)).subquery()
        moment = session.scalar(select(func.max(merged.c.at)))
        if moment is not None:
            found[store.key] = moment
    return found


def _budgets(
    session: Session,
    stores: list[Store],
    quotas: Mapping[str, Mapping[str, tuple[int, float]]],
) -> dict[int, tuple[Budget, ...]]:
    now, found = utcnow(), {}
    for store in stores:
        rows = []
        for bucket, (limit, window) in quotas.get(store.platform, {}).items():
            row = session.get(RateBudget, f"store:{store.id}:{bucket}")
            if row is not None:
                rows.append(_budget(bucket, row, limit, window, now))
        found[store.id] = tuple(rows)
    return found


def _budget(bucket: str, row: RateBudget, limit: int, window: float, now: datetime) -> Budget:
    """The bucket as ``quota.take`` would see it now: stored tokens plus the refill since."""
    burst, rate = quota.shape(limit, window)
    elapsed = max(0.0, (now - row.updated_at).total_seconds())
    tokens = min(burst, row.tokens + elapsed * rate)
    blocked = row.blocked_until if row.blocked_until and row.blocked_until > now else None
    return Budget(bucket, 1.0 - tokens / burst, blocked)
