"""The balance rules applied to Salla's points history (``balance`` module docstring)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from worker.errors import PermanentError
from worker.platforms.salla.balance import snapshot_from_entries
from worker.platforms.salla.schemas import PointsEntry, load_points_page
from worker.points import PointsSnapshot

RIYADH = ZoneInfo("Asia/Riyadh")
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)  # 12:00 in Riyadh
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "salla"


def entry(
    points: int | str,
    status: str = "مؤكدة",
    *,
    used: int | str = 0,
    expiry: str | None = None,
) -> PointsEntry:
    """An entry as the schema loads it; ``expiry`` is store-local ``YYYY-MM-DD HH:MM:SS``."""
    return PointsEntry(
        name="مخصصة",
        points=Decimal(points),
        used_points=Decimal(used),
        status=status,
        expiry_date=datetime.fromisoformat(expiry) if expiry else None,
    )


def snapshot(*entries: PointsEntry, timezone: str = "Asia/Riyadh") -> PointsSnapshot:
    return snapshot_from_entries(entries, timezone=timezone, now=NOW)


@pytest.mark.parametrize("label", ["مؤكدة", " مؤكدة ", "مؤكد"])
def test_it_counts_confirmed_points(label: str) -> None:
    result = snapshot(entry(100, label, used=30), entry(5, label))

    assert result.available == Decimal(75)
    assert result.pending == Decimal(0)
    assert result.unknown_statuses == ()


@pytest.mark.parametrize("label", ["غير مؤكدة", "غير  مؤكدة"])
def test_it_does_not_count_unconfirmed_points_as_confirmed(label: str) -> None:
    result = snapshot(entry(100, label))

    assert result.available == Decimal(0)
    assert result.pending == Decimal(100)


@pytest.mark.parametrize("label", ["قيد الانتظار", "قيد  الانتظار", "معلقة"])
def test_it_counts_pending_points_apart(label: str) -> None:
    result = snapshot(entry(80, label, expiry="2025-03-02 10:00:00"), entry(20))

    assert result.pending == Decimal(80)
    assert result.available == Decimal(20)
    assert result.next_expiry_at is None  # pending points do not expire for the customer yet


@pytest.mark.parametrize(
    "label",
    ["منتهية", "منتهية الصلاحية", "ملغاة", "ملغية"],
)
def test_it_never_counts_expired_or_cancelled_entries(label: str) -> None:
    result = snapshot(entry(100, label, expiry="2030-01-01 00:00:00"), entry(10))

    assert (result.available, result.pending) == (Decimal(10), Decimal(0))
    assert result.unknown_statuses == ()


def test_it_treats_a_confirmed_entry_past_its_expiry_as_expired() -> None:
    result = snapshot(
        entry(100, expiry="2025-03-01 11:59:59"),  # a second before now, Riyadh time
        entry(40, expiry="2025-03-01 12:00:01"),
    )

    assert result.available == Decimal(40)
    assert result.next_expiry_at == datetime(2025, 3, 1, 12, 0, 1, tzinfo=RIYADH)


def test_it_lists_unknown_labels_without_counting_them() -> None:
    result = snapshot(
        entry(100, "مجمدة"),
        entry(50, "frozen"),
        entry(5, " frozen "),
        entry(7, "مؤكدة"),
        entry(3, "confirmed"),  # no English label is published (Accept-Language: ar)
    )

    assert result.available == Decimal(7)
    assert result.pending == Decimal(0)
    assert result.unknown_statuses == ("confirmed", "frozen", "مجمدة")


def test_it_groups_the_next_expiry_by_local_day_in_riyadh() -> None:
    # In UTC the first of these falls on 4 March and the other two on 5 March;
    # in Riyadh, the store's time, the first two fall on 5 March.
    result = snapshot(
        entry(100, expiry="2025-03-05 23:30:00"),
        entry(50, expiry="2025-03-05 00:10:00"),
        entry(70, expiry="2025-03-06 00:30:00"),
        entry(1000, expiry="2025-06-01 00:00:00"),
    )

    assert result.next_expiry_at == datetime(2025, 3, 5, 0, 10, tzinfo=RIYADH)
    assert result.next_expiry_at.utcoffset() is not None
    assert result.next_expiry_points == Decimal(150)


def test_it_reads_expiry_dates_in_the_store_timezone() -> None:
    # 10:00 in the store's zone: past in Riyadh (07:00 UTC), future in UTC.
    expiring = entry(100, expiry="2025-03-01 10:00:00")

    assert snapshot(expiring).available == Decimal(0)
    assert snapshot(expiring, timezone="UTC").available == Decimal(100)


def test_it_defaults_to_riyadh_when_the_store_has_no_timezone() -> None:
    result = snapshot(entry(10, expiry="2025-04-01 00:00:00"), timezone="")

    assert result.next_expiry_at == datetime(2025, 4, 1, tzinfo=RIYADH)


def test_it_refuses_an_unknown_timezone() -> None:
    with pytest.raises(PermanentError, match="Mars/Olympus"):
        snapshot(entry(10), timezone="Mars/Olympus")


def test_it_skips_used_up_entries_when_finding_the_next_expiry() -> None:
    result = snapshot(
        entry(100, used=100, expiry="2025-03-02 00:00:00"),
        entry(60, used=20, expiry="2025-03-09 00:00:00"),
    )

    assert result.next_expiry_at == datetime(2025, 3, 9, tzinfo=RIYADH)
    assert result.next_expiry_points == Decimal(40)
    assert result.available == Decimal(40)


def test_it_subtracts_negative_entries() -> None:
    result = snapshot(entry(300, expiry="2025-03-02 00:00:00"), entry(-120))

    assert result.available == Decimal(180)
    assert result.next_expiry_points == Decimal(180)  # capped: a deduction ate into them


def test_it_never_reports_a_negative_balance() -> None:
    result = snapshot(entry(50), entry(-200))

    assert result.available == Decimal(0)
    assert result.next_expiry_points == Decimal(0)


def test_it_sums_used_points_over_every_status() -> None:
    result = snapshot(
        entry(100, used=40),
        entry(100, "منتهية", used=25),
        entry(100, "ملغاة", used=5),
        entry(100, "unheard of", used="2.5"),
    )

    assert result.used == Decimal("72.5")
    assert result.available == Decimal(60)


def test_it_returns_an_empty_snapshot_for_an_empty_history() -> None:
    assert snapshot() == PointsSnapshot()


def test_it_reports_no_tier() -> None:
    assert snapshot(entry(10)).tier is None


def test_it_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot_from_entries([entry(1)], timezone="Asia/Riyadh", now=datetime(2025, 3, 1))


def test_it_computes_the_seed_example_balance() -> None:
    document = json.loads((FIXTURES / "points_000.json").read_text(encoding="utf-8"))
    page = load_points_page(document)

    result = snapshot_from_entries(page.entries, timezone="Asia/Riyadh", now=NOW)

    assert result.available == Decimal(1800)
    assert result.next_expiry_at == datetime(2029, 2, 17, 17, 15, 47, tzinfo=RIYADH)
    assert result.next_expiry_points == Decimal(1800)
