"""Zid's points balance: Zid computes the balances, we only find the next expiry.

Unlike Salla, Zid answers with balances (zidsa/sdk-python
tests/fixtures/loyalty_customer.json, ``loyalty_points_info``), so
the rules here are few, decided here and only here:

- ``available`` = ``points_balance``, else ``available_poitns`` /
  ``available_points`` (which of the two is spendable is undocumented: both are
  logged when they differ; confirm on a live store). Never below zero.
- ``pending`` = ``pending_points_balance``; ``used`` = ``used_poitns`` / ``used_points``.
- ``next_expiry_at`` = the earliest future ``expiry_date`` among credits
  (``direction == "+"``) whose ``point_status_code`` is not one of
  ``SPENT_STATUSES``. Pending credits are left out too: they are not in the
  spendable balance, so "N points expire on D" would promise points the
  customer cannot use. Any other status (Zid documents only "pending" and
  "expired") counts as live.
- ``next_expiry_points`` = the points of those credits expiring on the same
  calendar day in the store's time zone, capped at ``available`` (entries carry
  no per-entry usage, so a redemption may already have eaten into them).
- ``tier`` is None: Zid's loyalty endpoints have no tiers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import PermanentError
from worker.platforms.zid.schemas import HistoryEntry, LoyaltyBalance
from worker.points import ZERO, PointsSnapshot

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Asia/Riyadh"
SPENT_STATUSES = frozenset(
    {"expired", "used", "pending", "cancelled", "canceled", "refunded", "rejected", "reversed"}
)


def store_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise PermanentError(f"unknown store timezone {name[:64]!r}") from None


def snapshot_from_balance(
    balance: LoyaltyBalance, history: Iterable[HistoryEntry], *, timezone: str, now: datetime
) -> PointsSnapshot:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = store_zone(timezone)
    available = max(ZERO, balance.available)
    next_expiry_at, expiring = next_expiry(live_credits(history, now), zone)
    return PointsSnapshot(
        available=available,
        pending=max(ZERO, balance.pending),
        used=balance.used,
        next_expiry_at=next_expiry_at,
        next_expiry_points=min(expiring, available),
        tier=None,
    )


def live_credits(history: Iterable[HistoryEntry], now: datetime) -> list[HistoryEntry]:
    """Credits that can still expire: dated in the future and not spent, expired or pending."""
    return [
        entry
        for entry in history
        if entry.is_credit
        and entry.status_code not in SPENT_STATUSES
        and entry.expiry_date is not None
        and entry.expiry_date > now
    ]


def next_expiry(credits: Sequence[HistoryEntry], zone: ZoneInfo) -> tuple[datetime | None, Decimal]:
    """The first expiry (in the store's zone) and the points expiring that local day."""
    dated = [
        (entry.expiry_date.astimezone(zone), entry.points) for entry in credits if entry.expiry_date
    ]
    if not dated:
        return None, ZERO
    first = min(moment for moment, _ in dated)
    return first, sum((points for moment, points in dated if moment.date() == first.date()), ZERO)


def log_disagreement(store: str, balance: LoyaltyBalance) -> None:
    """Which of the two balances is spendable is undocumented: say when they differ."""
    both = (balance.points_balance, balance.available_points)
    if None not in both and both[0] != both[1]:
        log.info(
            "zid store %s: points_balance %s differs from available_poitns %s (using the first)",
            store,
            *both,
        )
