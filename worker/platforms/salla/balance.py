"""Salla's points balance, computed from the history its API returns.

Salla sends entries, not a balance (https://docs.salla.dev/12250577e0: "the
history of a customer's loyalty points"), so these are our rules, decided here
and only here:

- A status label is matched exactly after stripping, collapsing inner spaces
  and case-folding. Labels are Arabic: the client asks with ``Accept-Language:
  ar``, and the only label Salla documents is Arabic — مؤكدة (confirmed), in
  the endpoint's example. The others are our reading of Salla's Arabic
  vocabulary, not published: pending قيد الانتظار / معلقة / غير مؤكدة (points
  awaiting the order's completion), expired منتهية / منتهية الصلاحية, cancelled
  ملغاة / ملغية. Exact matching matters: "غير مؤكدة" (unconfirmed) contains "مؤكدة".
  No English label is published, so none is accepted.
- Any other label is listed, deduplicated and sorted, in ``unknown_statuses``;
  it never raises here, and the refresh holds such a snapshot: nothing is
  stored or sent until ops know the label (``worker.pipeline.refresh``).
- ``available`` = Σ(points − used_points) over confirmed entries whose expiry
  is absent or later than ``now``; a confirmed entry past its expiry is expired
  whatever its label says. Negative entries (deductions) subtract. The total is
  never below zero.
- ``used`` = Σ used_points over all entries, whatever their status.
- ``pending`` = Σ points over pending entries.
- ``next_expiry_at`` = the earliest future expiry among confirmed entries with
  points left; ``expiry_date`` is the store's wall-clock time in ``timezone``
  (Asia/Riyadh when the store has none). ``next_expiry_points`` = the points
  left in entries expiring on that same local calendar day, capped at
  ``available`` (a deduction may already have eaten into them).
- ``tier`` is None: Salla's endpoint has no tiers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import PermanentError
from worker.platforms.salla.schemas import PointsEntry
from worker.points import ZERO, PointsSnapshot

DEFAULT_TIMEZONE = "Asia/Riyadh"
CONFIRMED = "confirmed"
PENDING = "pending"
EXPIRED = "expired"
CANCELLED = "cancelled"
LABEL_LIMIT = 64

STATUS_LABELS: dict[str, tuple[str, ...]] = {
    CONFIRMED: ("مؤكدة", "مؤكد"),
    PENDING: ("قيد الانتظار", "معلقة", "غير مؤكدة"),
    EXPIRED: ("منتهية", "منتهية الصلاحية"),
    CANCELLED: ("ملغاة", "ملغية"),
}
STATUS_KINDS: dict[str, str] = {
    label.casefold(): kind for kind, labels in STATUS_LABELS.items() for label in labels
}


@functools.lru_cache(maxsize=1024)  # a store's history repeats a handful of labels
def status_kind(label: str) -> str | None:
    """The kind of a status label, or None when we do not know it."""
    return STATUS_KINDS.get(" ".join(label.split()).casefold())


def store_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise PermanentError(f"unknown store timezone {name[:LABEL_LIMIT]!r}") from None


def snapshot_from_entries(
    entries: Iterable[PointsEntry], *, timezone: str, now: datetime
) -> PointsSnapshot:
    """The rules above, in one pass over the history (each entry's kind and local
    expiry worked out once)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = store_zone(timezone)
    available = pending = used = ZERO
    dated: list[tuple[datetime, Decimal]] = []  # live entries with points left and an expiry
    unknown: set[str] = set()
    for entry in entries:
        used += entry.used_points
        kind = status_kind(entry.status)
        if kind == CONFIRMED:
            expiry = local_expiry(entry, zone)
            if expiry is None or expiry > now:
                left = entry.points - entry.used_points
                available += left
                if left > 0 and expiry is not None:
                    dated.append((expiry, left))
        elif kind == PENDING:
            pending += entry.points
        elif kind is None:
            unknown.add(entry.status.strip()[:LABEL_LIMIT])
    available = max(ZERO, available)
    next_expiry_at, expiring = _next_expiry(dated)
    return PointsSnapshot(
        available=available,
        pending=pending,
        used=used,
        next_expiry_at=next_expiry_at,
        next_expiry_points=min(expiring, available),
        tier=None,
        unknown_statuses=tuple(sorted(unknown)),
    )


def local_expiry(entry: PointsEntry, zone: ZoneInfo) -> datetime | None:
    """The entry's expiry as an aware datetime in the store's zone."""
    if entry.expiry_date is None:
        return None
    if entry.expiry_date.tzinfo is None:
        return entry.expiry_date.replace(tzinfo=zone)
    return entry.expiry_date.astimezone(zone)


def _next_expiry(dated: Sequence[tuple[datetime, Decimal]]) -> tuple[datetime | None, Decimal]:
    """The earliest expiry, and the points left that expire on its local calendar day."""
    if not dated:
        return None, ZERO
    first = min(expiry for expiry, _ in dated)
    return first, _sum(left for expiry, left in dated if expiry.date() == first.date())


def _sum(values: Iterable[Decimal]) -> Decimal:
    return sum(values, ZERO)
