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
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = store_zone(timezone)
    history = [(entry, status_kind(entry.status)) for entry in entries]
    live = [e for e, kind in history if kind == CONFIRMED and _unexpired(e, zone, now)]
    available = max(ZERO, _sum(entry.points_left for entry in live))
    next_expiry_at, expiring = _next_expiry(live, zone)
    return PointsSnapshot(
        available=available,
        pending=_sum(entry.points for entry, kind in history if kind == PENDING),
        used=_sum(entry.used_points for entry, _ in history),
        next_expiry_at=next_expiry_at,
        next_expiry_points=min(expiring, available),
        tier=None,
        unknown_statuses=_unknown_labels(entry for entry, kind in history if kind is None),
    )


def local_expiry(entry: PointsEntry, zone: ZoneInfo) -> datetime | None:
    """The entry's expiry as an aware datetime in the store's zone."""
    if entry.expiry_date is None:
        return None
    if entry.expiry_date.tzinfo is None:
        return entry.expiry_date.replace(tzinfo=zone)
    return entry.expiry_date.astimezone(zone)


def _unexpired(entry: PointsEntry, zone: ZoneInfo, now: datetime) -> bool:
    expiry = local_expiry(entry, zone)
    return expiry is None or expiry > now


def _next_expiry(live: Sequence[PointsEntry], zone: ZoneInfo) -> tuple[datetime | None, Decimal]:
    dated = [
        (expiry, entry.points_left)
        for entry in live
        if entry.points_left > 0 and (expiry := local_expiry(entry, zone)) is not None
    ]
    if not dated:
        return None, ZERO
    first = min(expiry for expiry, _ in dated)
    return first, _sum(left for expiry, left in dated if expiry.date() == first.date())


def _unknown_labels(entries: Iterable[PointsEntry]) -> tuple[str, ...]:
    return tuple(sorted({entry.status.strip()[:LABEL_LIMIT] for entry in entries}))


def _sum(values: Iterable[Decimal]) -> Decimal:
    return sum(values, ZERO)
