from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from worker.points import (
    BALANCE_CHANGED,
    EXPIRY_CHANGED,
    TIER_CHANGED,
    PointsSnapshot,
    change_kinds,
    change_payload,
)

EXPIRY = datetime(2029, 2, 17, 14, 42, tzinfo=UTC)


def snapshot(**fields: object) -> PointsSnapshot:
    return PointsSnapshot(**fields)  # type: ignore[arg-type]


def test_it_sees_no_change_between_equal_snapshots() -> None:
    before = snapshot(available=Decimal(900), next_expiry_at=EXPIRY, tier="Gold")
    after = snapshot(available=Decimal("900.0"), next_expiry_at=EXPIRY, tier="Gold")
    assert change_kinds(before, after) == []


def test_it_names_every_kind_of_change() -> None:
    before = snapshot(available=Decimal(900))
    after = snapshot(
        available=Decimal(1800), next_expiry_at=EXPIRY, next_expiry_points=Decimal(900), tier="VIP"
    )
    assert change_kinds(before, after) == [BALANCE_CHANGED, EXPIRY_CHANGED, TIER_CHANGED]


def test_it_counts_pending_points_as_a_balance_change() -> None:
    assert change_kinds(snapshot(), snapshot(pending=Decimal(50))) == [BALANCE_CHANGED]


def test_it_compares_a_new_customer_with_an_empty_balance() -> None:
    assert change_kinds(None, snapshot(available=Decimal(10))) == [BALANCE_CHANGED]
    assert change_kinds(None, snapshot()) == []


def test_it_builds_the_same_payload_shape_for_every_platform() -> None:
    after = snapshot(
        available=Decimal("250.5"), next_expiry_at=EXPIRY, next_expiry_points=Decimal(100)
    )
    payload = change_payload(
        platform="salla",
        store="salla:1",
        customer_id="7",
        kinds=[BALANCE_CHANGED],
        before=None,
        after=after,
        timezone="Asia/Riyadh",
    )
    assert payload["balance_before"] == 0 and payload["balance_after"] == 250.5
    assert payload["next_expiry_at"] == "2029-02-17T14:42:00Z"
    assert payload["next_expiry_date"] == "2029-02-17"  # 17:42 in Riyadh
    assert payload["next_expiry_points"] == 100
    assert payload["after"]["available"] == 250.5 and payload["before"]["available"] == 0
