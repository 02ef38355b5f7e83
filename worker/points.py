"""The normalised points snapshot every platform produces, and the pure rules
that turn two snapshots into change kinds and a sink payload."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

BALANCE_CHANGED = "points.balance_changed"
EXPIRY_CHANGED = "points.expiry_changed"
TIER_CHANGED = "points.tier_changed"
EXPIRING_SOON = "points.expiring_soon"
EXPIRED = "points.expired"
CHANGE_KINDS = (BALANCE_CHANGED, EXPIRY_CHANGED, TIER_CHANGED, EXPIRING_SOON, EXPIRED)
ZERO = Decimal(0)


@dataclass(frozen=True)
class CustomerContact:
    """What the platform tells us about the customer; PII, stored encrypted."""

    email: str | None = None
    phone: str | None = None
    locale: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class PointsSnapshot:
    available: Decimal = ZERO
    pending: Decimal = ZERO
    used: Decimal = ZERO
    next_expiry_at: datetime | None = None
    next_expiry_points: Decimal = ZERO
    tier: str | None = None
    contact: CustomerContact = field(default_factory=CustomerContact)
    excluded: bool = False
    fetched_at: datetime | None = None
    # Status labels the platform sent that we do not know; counted as not available.
    unknown_statuses: tuple[str, ...] = ()

    def state(self) -> dict[str, Any]:
        """The comparable, PII-free part, as JSON-ready values."""
        return {
            "available": json_number(self.available),
            "pending": json_number(self.pending),
            "used": json_number(self.used),
            "next_expiry_at": _utc_iso(self.next_expiry_at),
            "next_expiry_points": json_number(self.next_expiry_points),
            "tier": self.tier,
        }


EMPTY = PointsSnapshot()


def change_kinds(before: PointsSnapshot | None, after: PointsSnapshot) -> list[str]:
    """Which kinds of change lead from ``before`` to ``after``.

    A customer we have never seen is compared with an empty balance, so the
    first snapshot with points reaches the sinks (a CRM then holds the values).
    """
    before = before or EMPTY
    kinds = []
    if (before.available, before.pending) != (after.available, after.pending):
        kinds.append(BALANCE_CHANGED)
    if (before.next_expiry_at, before.next_expiry_points) != (
        after.next_expiry_at,
        after.next_expiry_points,
    ):
        kinds.append(EXPIRY_CHANGED)
    if before.tier != after.tier:
        kinds.append(TIER_CHANGED)
    return kinds


def change_payload(
    *,
    platform: str,
    store: str,
    customer_id: str,
    kinds: list[str],
    before: PointsSnapshot | None,
    after: PointsSnapshot,
    timezone: str,
) -> dict[str, Any]:
    """The ``data`` of an outbound event: the same for every platform.

    Times are UTC; ``next_expiry_date`` is the calendar day in the store's time zone.
    """
    previous = (before or EMPTY).state()
    current = after.state()
    expiry = after.next_expiry_at
    return {
        "platform": platform,
        "store": store,
        "customer_id": customer_id,
        "kinds": kinds,
        "balance_before": previous["available"],
        "balance_after": current["available"],
        "pending": current["pending"],
        "next_expiry_at": current["next_expiry_at"],
        "next_expiry_date": expiry.astimezone(ZoneInfo(timezone)).date().isoformat()
        if expiry
        else None,
        "next_expiry_points": current["next_expiry_points"],
        "tier": current["tier"],
        "before": previous,
        "after": current,
    }


def _utc_iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
