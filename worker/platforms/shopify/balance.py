"""Appstle's loyalty record as a ``PointsSnapshot``: a pure mapping, decided here only.

Appstle computes the balances itself (its customer-loyalty answer, see
``worker.platforms.shopify.schemas``), so the rules are few:

- ``available`` = ``availablePoints`` and ``pending`` = ``pendingPoints``,
  decimals as Appstle sends them, never below zero.
- ``used`` is zero: Appstle reports no spent-points total (``creditedPoints``
  is lifetime earned; what is missing from it was redeemed *or* expired).
- The next expiry is ``pointsExpireAt`` with ``expiringPointsAmount`` points,
  only while that moment is in the future and the amount is positive; the
  amount is capped at ``available``. Without an amount, all available points
  are taken to expire then (Appstle's expiry is commonly for the whole balance
  after inactivity — a guess to confirm on a live store).
- ``tier`` = ``currentVipTier`` (none when null or empty).
- ``excluded`` when ``customerStatus`` is EXCLUDED or EXCLUDED_BY_CUSTOMER:
  the customer opted out or was taken out, so no message goes to them.
  ACTIVE, INACTIVE and unknown statuses are not excluded.
- The contact email is the address a customer was looked up by, if any;
  Appstle's answer carries none.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from worker.platforms.shopify.schemas import CustomerLoyalty
from worker.points import ZERO, CustomerContact, PointsSnapshot

EXCLUDED_STATUSES = frozenset({"EXCLUDED", "EXCLUDED_BY_CUSTOMER"})


def snapshot_from_loyalty(
    loyalty: CustomerLoyalty, *, now: datetime, email: str | None = None
) -> PointsSnapshot:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    available = max(ZERO, loyalty.available)
    expires_at, expiring = next_expiry(loyalty, available, now)
    return PointsSnapshot(
        available=available,
        pending=max(ZERO, loyalty.pending),
        used=ZERO,
        next_expiry_at=expires_at,
        next_expiry_points=expiring,
        tier=loyalty.tier,
        contact=CustomerContact(email=email),
        excluded=loyalty.status in EXCLUDED_STATUSES,
    )


def next_expiry(
    loyalty: CustomerLoyalty, available: Decimal, now: datetime
) -> tuple[datetime | None, Decimal]:
    """(when, how many) of the next expiry, or (None, 0) when nothing is due to expire."""
    expires_at = loyalty.points_expire_at
    if expires_at is None or expires_at <= now or available <= ZERO:
        return None, ZERO
    amount = available if loyalty.expiring_points is None else loyalty.expiring_points
    if amount <= ZERO:
        return None, ZERO
    return expires_at, min(amount, available)
