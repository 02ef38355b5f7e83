"""Appstle's loyalty record as a snapshot: the pure mapping rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from worker.platforms.shopify.balance import snapshot_from_loyalty
from worker.platforms.shopify.schemas import CustomerLoyalty
from worker.points import ZERO, CustomerContact

NOW = datetime(2026, 11, 23, 9, 20, tzinfo=UTC)
SOON = NOW + timedelta(days=3)


def record(**fields: object) -> CustomerLoyalty:
    values: dict[str, object] = {"available": Decimal("250.5"), "pending": Decimal(50)}
    return CustomerLoyalty(**(values | fields))  # type: ignore[arg-type]


def test_it_takes_appstles_balances_as_they_are() -> None:
    snapshot = snapshot_from_loyalty(record(tier="Gold"), now=NOW)
    assert (snapshot.available, snapshot.pending, snapshot.used) == (
        Decimal("250.5"), Decimal(50), ZERO,
    )  # fmt: skip
    assert (snapshot.tier, snapshot.excluded, snapshot.contact) == (
        "Gold",
        False,
        CustomerContact(),
    )


def test_it_never_goes_below_zero() -> None:
    snapshot = snapshot_from_loyalty(record(available=Decimal(-5), pending=Decimal(-1)), now=NOW)
    assert (snapshot.available, snapshot.pending) == (ZERO, ZERO)


def test_it_reports_the_next_expiry_in_the_future() -> None:
    snapshot = snapshot_from_loyalty(
        record(points_expire_at=SOON, expiring_points=Decimal("40.25")), now=NOW
    )
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (SOON, Decimal("40.25"))


@pytest.mark.parametrize("moment", [NOW, NOW - timedelta(seconds=1), NOW - timedelta(days=30)])
def test_it_ignores_an_expiry_in_the_past(moment: datetime) -> None:
    snapshot = snapshot_from_loyalty(
        record(points_expire_at=moment, expiring_points=Decimal(40)), now=NOW
    )
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (None, ZERO)


def test_it_caps_the_expiring_points_at_the_balance() -> None:
    snapshot = snapshot_from_loyalty(
        record(points_expire_at=SOON, expiring_points=Decimal(900)), now=NOW
    )
    assert snapshot.next_expiry_points == Decimal("250.5")


def test_it_takes_the_whole_balance_when_no_amount_is_given() -> None:
    snapshot = snapshot_from_loyalty(record(points_expire_at=SOON), now=NOW)
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (SOON, Decimal("250.5"))


@pytest.mark.parametrize(
    "fields",
    [
        {"points_expire_at": SOON, "expiring_points": ZERO},
        {"points_expire_at": SOON, "available": ZERO},
        {"expiring_points": Decimal(40)},
    ],
)
def test_it_reports_no_expiry_when_nothing_can_expire(fields: dict[str, object]) -> None:
    snapshot = snapshot_from_loyalty(record(**fields), now=NOW)
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (None, ZERO)


@pytest.mark.parametrize(
    ("status", "excluded"),
    [
        ("EXCLUDED", True),
        ("EXCLUDED_BY_CUSTOMER", True),
        ("ACTIVE", False),
        ("INACTIVE", False),
        ("SOMETHING_NEW", False),
        (None, False),
    ],
)
def test_it_excludes_customers_appstle_excludes(status: str | None, excluded: bool) -> None:
    assert snapshot_from_loyalty(record(status=status), now=NOW).excluded is excluded


def test_it_keeps_the_email_it_looked_the_customer_up_by() -> None:
    snapshot = snapshot_from_loyalty(record(), now=NOW, email="sara@example.com")
    assert snapshot.contact == CustomerContact(email="sara@example.com")


def test_it_wants_an_aware_now() -> None:
    with pytest.raises(ValueError):
        snapshot_from_loyalty(record(), now=NOW.replace(tzinfo=None))
