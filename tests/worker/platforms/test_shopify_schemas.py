"""Appstle's customer-loyalty answer: every seed example parses, and the loose
shapes a Java service may send are read the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.worker.platforms.appstle_support import fixture
from worker.errors import PermanentError
from worker.platforms.shopify.schemas import CustomerLoyalty, load_customer_loyalty

SEED = "customer_loyalty_seed_003.json"


def loyalty(**fields: Any) -> CustomerLoyalty:
    return load_customer_loyalty({"availablePoints": 250} | fields)


def test_it_parses_the_seed_example() -> None:
    parsed = load_customer_loyalty(fixture(SEED))
    assert parsed == CustomerLoyalty(
        available=Decimal(250),
        pending=Decimal(50),
        credited=Decimal(500),
        tier="Gold",
        status="ACTIVE",
        expiring_points=None,
        points_expire_at=None,
    )


def test_it_parses_the_seed_example_with_its_expiry_fields() -> None:
    document = fixture(SEED) | {
        "expiringPointsAmount": 40.5,
        "pointsExpireAt": "2031-01-02T03:04:05Z",
    }
    parsed = load_customer_loyalty(document)
    assert parsed.expiring_points == Decimal("40.5")
    assert parsed.points_expire_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (250, "250"),
        (250.5, "250.5"),
        (1250.99, "1250.99"),
        ("12.75", "12.75"),
        (0.1, "0.1"),
        (None, "0"),
    ],
)
def test_it_reads_points_as_exact_decimals(raw: Any, expected: str) -> None:
    assert loyalty(availablePoints=raw).available == Decimal(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2031-01-02T03:04:05Z", datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2031-01-02T03:04:05.123456Z", datetime(2031, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2031-01-02T06:04:05+03:00", datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2031-01-02T03:04:05", datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2031-01-02", datetime(2031, 1, 2, tzinfo=UTC)),
        (1925089445, datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1925089445000, datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_it_reads_expiry_dates_in_every_shape(raw: Any, expected: datetime | None) -> None:
    assert loyalty(pointsExpireAt=raw).points_expire_at == expected


def test_it_reads_an_empty_tier_as_none_and_upper_cases_the_status() -> None:
    parsed = loyalty(currentVipTier="", customerStatus="excluded_by_customer")
    assert (parsed.tier, parsed.status) == (None, "EXCLUDED_BY_CUSTOMER")
    assert loyalty(currentVipTier=None, customerStatus=None).tier is None


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"pendingPoints": 5},
        {"availablePoints": "lots"},
        {"availablePoints": True},
        {"availablePoints": float("nan")},
        {"availablePoints": 1, "pointsExpireAt": "next tuesday"},
        {"availablePoints": 1, "pointsExpireAt": 10**30},
        {"availablePoints": 1, "currentVipTier": {"name": "Gold"}},
    ],
)
def test_it_refuses_an_answer_that_is_not_a_loyalty_record(document: dict[str, Any]) -> None:
    with pytest.raises(PermanentError, match="malformed"):
        load_customer_loyalty(document)


@pytest.mark.parametrize("document", [[], "text", None, 3])
def test_it_refuses_an_answer_that_is_not_an_object(document: Any) -> None:
    with pytest.raises(PermanentError, match="not a JSON object"):
        load_customer_loyalty(document)


def test_it_never_puts_values_in_its_messages() -> None:
    with pytest.raises(PermanentError) as failure:
        load_customer_loyalty({"availablePoints": "sara@example.com"})
    assert "sara" not in str(failure.value) and "availablePoints" in str(failure.value)
